//! The record Weft keeps in its DHT ([`super::kademlia`]): a small value signed by its publisher,
//! stored at a key anyone can derive from what the record is about.
//!
//! Two kinds exist:
//! - [`RecordKind::Addresses`]: where a peer can be dialed, published by the peer itself and stored
//!   at [`addresses_key`] of its id, so a node that knows only a [`PeerId`] can find a way to reach
//!   it without asking a bootstrap server.
//! - [`RecordKind::Name`]: a human name's record mirrored from a bootstrap server, published under
//!   the server's identity and stored at [`name_key`] of that server and the name (a node knows
//!   which server it trusts, so it can derive the key; another publisher cannot squat it), so names
//!   keep resolving while the server is unreachable.
//!
//! Records are self-certifying: [`SignedRecord::check`] needs nothing but the record, because the
//! publisher's id is its public key. The signature covers every field but itself (the postcard
//! encoding of a body under [`signing_domain::DHT_RECORD`], like chat and direct messages), so a
//! peer that stores a record can neither change its value, roll back its sequence number, stretch
//! its expiry, nor move it to another key: the key is derived from signed fields only.
//!
//! The size bounds are checked again on every record a peer hands us, before the signature: a
//! record over its bounds is refused whoever signed it, and refusing it costs no signature check.
//!
//! [`RecordKind`] is part of the wire format: new kinds are appended, never inserted.

use super::kademlia::{Key, Record};
use crate::identity::{signed_bytes, signing_domain, Keypair, PeerId, Signature};
use crate::time::Instant;
use crate::wire::MAX_ADDRS;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Largest value a record carries, in bytes. Room for a mirrored name answer at its largest
/// (a postcard [`NameAnswer`](crate::names::NameAnswer) with a 512-byte value is about 800 bytes),
/// while keeping what a storing peer must hold per record small.
pub const MAX_VALUE_LEN: usize = 1024;

/// Longest name a name record carries, in bytes: the bootstrap server's own limit
/// ([`crate::names::MAX_NAME_LEN`]), so every name a server serves can be mirrored and nothing
/// longer takes room in the DHT.
pub const MAX_NAME_LEN: usize = crate::names::MAX_NAME_LEN;

/// Most peers an addresses record names as ways in ([`RecordKind::Addresses`]).
pub const MAX_VIA: usize = 8;

/// Hash domain of an addresses record's key. Each kind has its own, so no record of one kind can
/// land on the key of another, even when the hashed bytes coincide.
const ADDRESSES_KEY_DOMAIN: &[u8] = b"weft/v1/dht-key/addresses\0";
/// Hash domain of a name record's key.
const NAME_KEY_DOMAIN: &[u8] = b"weft/v1/dht-key/name\0";

/// Where the addresses of `peer` are stored. It differs from the peer's own routing key
/// ([`KeyOf`](super::kademlia::KeyOf)) on purpose: a record key names a record, not a node.
pub fn addresses_key(peer: &PeerId) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(ADDRESSES_KEY_DOMAIN);
    h.update(peer.as_bytes());
    *h.finalize().as_bytes()
}

/// Where `server`'s record of the human name `name` is stored. The server is part of the key: a
/// record under another publisher's identity lands elsewhere, so nobody can hold the slot of a
/// trusted server's name.
pub fn name_key(server: &PeerId, name: &str) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(NAME_KEY_DOMAIN);
    h.update(server.as_bytes());
    h.update(name.as_bytes());
    *h.finalize().as_bytes()
}

/// What a record is about. With the publisher (for addresses) it decides where the record is
/// stored, and it is signed, so a record cannot be passed off as being about something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKind {
    /// The publisher's current addresses. The value is the postcard encoding of a
    /// `Vec<SocketAddr>` of at most [`MAX_ADDRS`] entries (IPv6 flow info and scope ids are not
    /// carried: they mean nothing to another host), then optionally of a `Vec<PeerId>` of at
    /// most [`MAX_VIA`] peers linked to the publisher: the way to reach one that cannot be
    /// dialed (a browser, or a node behind a NAT) is through one of them.
    Addresses,
    /// A human name, 1 to [`MAX_NAME_LEN`] bytes, mirrored from a bootstrap server. The publisher is
    /// the server's identity and the value the server's own encoding of the name's record, opaque
    /// here: whoever reads it checks it against the servers it trusts.
    Name(String),
}

/// A value in the DHT, signed by its publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// What the record is about (and, for a name, which name).
    pub kind: RecordKind,
    /// Who signed it: the peer whose addresses these are, or the server vouching for the name.
    /// Its id is its public key, so the record verifies without any other state.
    pub publisher: PeerId,
    /// The payload, at most [`MAX_VALUE_LEN`] bytes; its form depends on `kind`.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// The version, raised by the publisher with every new record for the same key: storing peers
    /// replace a record only with a higher one from the same publisher, so an old version a peer
    /// replays cannot roll a newer one back.
    pub seq: u64,
    /// When the record stops being served (Unix milliseconds, publisher's clock). Signed, so a
    /// storing peer cannot keep a record alive past what its publisher chose; storing peers also
    /// refuse expiries too far ahead ([`Config::max_record_ttl`](super::kademlia::Config)).
    pub expires_ms: u64,
    /// The publisher's signature over every field above.
    pub signature: Signature,
}

/// Why a record cannot be made, or is not to be stored or believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("a record value of {len} bytes exceeds {MAX_VALUE_LEN}")]
    ValueTooLong {
        /// Its length.
        len: usize,
    },
    /// The name is empty or longer than [`MAX_NAME_LEN`].
    #[error("a record name is 1 to {MAX_NAME_LEN} bytes, got {len}")]
    NameLength {
        /// Its length in bytes.
        len: usize,
    },
    /// More addresses than [`MAX_ADDRS`] (as given, or as the value claims).
    #[error("{count} addresses exceed {MAX_ADDRS}")]
    TooManyAddrs {
        /// How many.
        count: usize,
    },
    /// More linked peers than [`MAX_VIA`] (as given, or as the value claims).
    #[error("{count} linked peers exceed {MAX_VIA}")]
    TooManyVia {
        /// How many.
        count: usize,
    },
    /// An addresses record whose value is not a list of socket addresses.
    #[error("the addresses in a record do not decode")]
    MalformedAddrs,
    /// The signature does not verify against the publisher.
    #[error("the record is not signed by its publisher")]
    BadSignature,
}

/// The signed part of a record: every field but the signature, borrowed so that signing and
/// checking copy nothing. Its postcard encoding, under the domain tag, is what the publisher signs.
#[derive(Serialize)]
struct RecordBody<'a> {
    kind: &'a RecordKind,
    publisher: &'a PeerId,
    #[serde(with = "serde_bytes")]
    value: &'a [u8],
    seq: u64,
    expires_ms: u64,
}

impl RecordBody<'_> {
    fn signing_input(&self) -> Vec<u8> {
        // Encoding plain data into a Vec cannot fail: every field is serializable and sized.
        signed_bytes(signing_domain::DHT_RECORD, &postcard::to_allocvec(self).unwrap_or_default())
    }
}

/// Checks the sizes a publisher controls; `Ok` means the record is small enough to hold and, for
/// addresses, that its value decodes.
fn check_bounds(kind: &RecordKind, value: &[u8]) -> Result<(), RecordError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(RecordError::ValueTooLong { len: value.len() });
    }
    match kind {
        RecordKind::Addresses => decode_addrs(value).map(|_| ()),
        RecordKind::Name(name) => check_name(name),
    }
}

fn check_name(name: &str) -> Result<(), RecordError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(RecordError::NameLength { len: name.len() });
    }
    Ok(())
}

/// The claimed length of the sequence `value` starts with, refused above `max` (read first: a
/// forged length would otherwise make the decoder reserve room for it).
fn sequence_len(value: &[u8], max: usize, too_many: fn(usize) -> RecordError) -> Result<(), RecordError> {
    // postcard writes a sequence as its length (a varint) and then the elements.
    let (count, _) = postcard::take_from_bytes::<u32>(value).map_err(|_| RecordError::MalformedAddrs)?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > max {
        return Err(too_many(count));
    }
    Ok(())
}

/// Decodes an addresses value: the addresses and the peers linked to the publisher (none when
/// the value stops after the addresses). Trailing bytes after those are ignored, as on the
/// wire, so a later version can append to the value without older nodes refusing it.
fn decode_addrs(value: &[u8]) -> Result<(Vec<SocketAddr>, Vec<PeerId>), RecordError> {
    sequence_len(value, MAX_ADDRS, |count| RecordError::TooManyAddrs { count })?;
    let (addrs, rest) = postcard::take_from_bytes(value).map_err(|_| RecordError::MalformedAddrs)?;
    if rest.is_empty() {
        return Ok((addrs, Vec::new()));
    }
    sequence_len(rest, MAX_VIA, |count| RecordError::TooManyVia { count })?;
    let (via, _) = postcard::take_from_bytes(rest).map_err(|_| RecordError::MalformedAddrs)?;
    Ok((addrs, via))
}

impl SignedRecord {
    /// The addresses record of the peer `keys` names: `addrs` (at most [`MAX_ADDRS`], possibly
    /// none, to say "not reachable directly"), version `seq`, served until `expires` (kept to the
    /// millisecond).
    pub fn addresses(keys: &Keypair, addrs: &[SocketAddr], seq: u64, expires: Instant) -> Result<Self, RecordError> {
        Self::addresses_via(keys, addrs, &[], seq, expires)
    }

    /// [`addresses`](Self::addresses), naming also `via`: peers linked to the publisher, through
    /// which it can be reached when none of `addrs` can be dialed (at most [`MAX_VIA`]).
    pub fn addresses_via(
        keys: &Keypair,
        addrs: &[SocketAddr],
        via: &[PeerId],
        seq: u64,
        expires: Instant,
    ) -> Result<Self, RecordError> {
        if addrs.len() > MAX_ADDRS {
            return Err(RecordError::TooManyAddrs { count: addrs.len() });
        }
        if via.len() > MAX_VIA {
            return Err(RecordError::TooManyVia { count: via.len() });
        }
        // Encoding socket addresses and ids into a Vec cannot fail; were it to, the bounds check
        // below would refuse the empty value rather than sign it.
        let mut value = postcard::to_allocvec(addrs).unwrap_or_default();
        if !via.is_empty() {
            value.extend(postcard::to_allocvec(via).unwrap_or_default());
        }
        check_bounds(&RecordKind::Addresses, &value)?;
        Ok(Self::sign_unchecked(keys, RecordKind::Addresses, value, seq, expires.unix_ms()))
    }

    /// The record of the human name `name`, published by the server whose identity is `keys`:
    /// `value` is the server's own encoding of the name's record (at most [`MAX_VALUE_LEN`]
    /// bytes), version `seq`, served until `expires` (kept to the millisecond).
    pub fn name(keys: &Keypair, name: &str, value: Vec<u8>, seq: u64, expires: Instant) -> Result<Self, RecordError> {
        check_name(name)?;
        let kind = RecordKind::Name(name.to_owned());
        check_bounds(&kind, &value)?;
        Ok(Self::sign_unchecked(keys, kind, value, seq, expires.unix_ms()))
    }

    /// Signs without checking any bound. The constructors check first; tests use it to build
    /// properly signed records that are over their bounds.
    fn sign_unchecked(keys: &Keypair, kind: RecordKind, value: Vec<u8>, seq: u64, expires_ms: u64) -> Self {
        let publisher = keys.peer_id();
        let body = RecordBody { kind: &kind, publisher: &publisher, value: &value, seq, expires_ms };
        let signature = keys.sign(&body.signing_input());
        SignedRecord { kind, publisher, value, seq, expires_ms, signature }
    }

    /// Checks what anyone can check with the record alone: its bounds, then its publisher's
    /// signature. Says why it fails, for logs and counters; [`Record::verify`] is this as a bool.
    /// Expiry is not checked here (it needs `now`; the DHT checks it on every store and answer).
    pub fn check(&self) -> Result<(), RecordError> {
        check_bounds(&self.kind, &self.value)?;
        let body = RecordBody {
            kind: &self.kind,
            publisher: &self.publisher,
            value: &self.value,
            seq: self.seq,
            expires_ms: self.expires_ms,
        };
        if !self.publisher.verify(&body.signing_input(), &self.signature) {
            return Err(RecordError::BadSignature);
        }
        Ok(())
    }

    /// The addresses of an addresses record; `None` for another kind or a value that does not
    /// decode within [`MAX_ADDRS`]. Decoding is not verifying: call it on a record that passed
    /// [`check`](Self::check) (the DHT hands out only those).
    pub fn addrs(&self) -> Option<Vec<SocketAddr>> {
        self.decoded_addrs().map(|(addrs, _)| addrs)
    }

    /// The peers an addresses record names as linked to its publisher (see
    /// [`addrs`](Self::addrs) for when it is `None`).
    pub fn via(&self) -> Option<Vec<PeerId>> {
        self.decoded_addrs().map(|(_, via)| via)
    }

    fn decoded_addrs(&self) -> Option<(Vec<SocketAddr>, Vec<PeerId>)> {
        match self.kind {
            RecordKind::Addresses => decode_addrs(&self.value).ok(),
            RecordKind::Name(_) => None,
        }
    }
}

impl Record for SignedRecord {
    /// Derived from signed fields only: the kind, plus the publisher for addresses.
    fn key(&self) -> Key {
        match &self.kind {
            RecordKind::Addresses => addresses_key(&self.publisher),
            RecordKind::Name(name) => name_key(&self.publisher, name),
        }
    }

    fn expires(&self) -> Instant {
        Instant::from_unix_ms(self.expires_ms)
    }

    /// [`SignedRecord::check`] as a bool: bounds and signature. Never panics, whatever a peer sent.
    fn verify(&self) -> bool {
        self.check().is_ok()
    }

    /// Only the same publisher's record about the same thing, with a higher `seq`: a publisher
    /// replaces its own records and nobody else's. An equal `seq` does not supersede, so the
    /// record stored first stays and a publisher must raise `seq` with every new version.
    ///
    /// A different publisher never supersedes (its records live at other keys anyway: the
    /// publisher is part of every key). The node decides which server identities it trusts when
    /// it looks a name up.
    fn supersedes(&self, other: &Self) -> bool {
        self.publisher == other.publisher && self.kind == other.kind && self.seq > other.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::kademlia::KeyOf;
    use proptest::prelude::any;

    fn keys(n: u8) -> Keypair {
        Keypair::from_secret([n; 32])
    }

    fn t(ms: u64) -> Instant {
        Instant::from_unix_ms(1_700_000_000_000 + ms)
    }

    fn some_addrs() -> Vec<SocketAddr> {
        vec!["192.0.2.7:4000".parse().unwrap(), "[2001:db8::1]:4001".parse().unwrap()]
    }

    fn many_addrs(n: usize) -> Vec<SocketAddr> {
        (0..n).map(|i| SocketAddr::from(([192, 0, 2, 1], 4000 + i as u16))).collect()
    }

    fn addresses(n: u8, seq: u64) -> SignedRecord {
        SignedRecord::addresses(&keys(n), &some_addrs(), seq, t(60_000)).unwrap()
    }

    fn name(n: u8, seq: u64) -> SignedRecord {
        SignedRecord::name(&keys(n), "alice", b"answer".to_vec(), seq, t(60_000)).unwrap()
    }

    #[test]
    fn both_kinds_verify_and_say_where_they_live() {
        let a = addresses(1, 1);
        assert_eq!(a.check(), Ok(()));
        assert!(a.verify());
        assert_eq!(a.publisher, keys(1).peer_id());
        assert_eq!(a.addrs(), Some(some_addrs()));
        assert_eq!(a.key(), addresses_key(&keys(1).peer_id()));
        assert_eq!(a.expires(), t(60_000));

        let n = name(3, 1);
        assert_eq!(n.check(), Ok(()));
        assert!(n.verify());
        assert_eq!(n.kind, RecordKind::Name("alice".into()));
        assert_eq!(n.value, b"answer");
        assert_eq!(n.addrs(), None);
        assert_eq!(n.key(), name_key(&keys(3).peer_id(), "alice"));
        assert_eq!(n.expires(), t(60_000));

        let none = SignedRecord::addresses(&keys(1), &[], 2, t(1)).unwrap();
        assert!(none.verify());
        assert_eq!(none.addrs(), Some(vec![]));
    }

    #[test]
    fn expiry_is_kept_to_the_millisecond() {
        let r = SignedRecord::addresses(&keys(1), &some_addrs(), 1, Instant::from_micros(5_000_999)).unwrap();
        assert_eq!(r.expires_ms, 5_000);
        assert_eq!(r.expires(), Instant::from_unix_ms(5_000));
        assert!(r.verify());
    }

    /// Every signed field changed on its own, with the bounds still met, so only the signature
    /// can catch it.
    fn tampered(r: &SignedRecord) -> Vec<(&'static str, SignedRecord)> {
        let value = match r.kind {
            RecordKind::Addresses => postcard::to_allocvec(&many_addrs(1)).unwrap(),
            RecordKind::Name(_) => b"forged".to_vec(),
        };
        let kind = match r.kind {
            RecordKind::Addresses => RecordKind::Name("alice".into()),
            RecordKind::Name(_) => RecordKind::Name("alicf".into()),
        };
        let mut appended = r.value.clone();
        appended.push(0);
        let mut signature = r.signature.to_bytes();
        signature[10] ^= 1;
        vec![
            ("value", SignedRecord { value, ..r.clone() }),
            ("value (appended)", SignedRecord { value: appended, ..r.clone() }),
            ("seq", SignedRecord { seq: r.seq + 1, ..r.clone() }),
            ("expires", SignedRecord { expires_ms: r.expires_ms + 1, ..r.clone() }),
            ("publisher", SignedRecord { publisher: keys(2).peer_id(), ..r.clone() }),
            ("kind", SignedRecord { kind, ..r.clone() }),
            ("signature", SignedRecord { signature: Signature::from_bytes(signature), ..r.clone() }),
        ]
    }

    #[test]
    fn an_addresses_record_names_the_peers_it_can_be_reached_through() {
        let via: Vec<PeerId> = (10..10 + MAX_VIA as u8).map(|n| keys(n).peer_id()).collect();
        let r = SignedRecord::addresses_via(&keys(1), &some_addrs(), &via, 1, t(60_000)).unwrap();
        assert_eq!(r.check(), Ok(()));
        assert_eq!((r.addrs(), r.via()), (Some(some_addrs()), Some(via.clone())));
        // A record from before `via` existed (addresses only) reads as reachable through nobody.
        assert_eq!(addresses(1, 1).via(), Some(vec![]));
        let too_many: Vec<PeerId> = (0..=MAX_VIA as u8).map(|n| keys(n).peer_id()).collect();
        let refused = SignedRecord::addresses_via(&keys(1), &[], &too_many, 1, t(1));
        assert_eq!(refused, Err(RecordError::TooManyVia { count: MAX_VIA + 1 }));
        // Signed anyway, by a publisher that skips the constructor: still refused.
        let mut value = postcard::to_allocvec(&some_addrs()).unwrap();
        value.extend(postcard::to_allocvec(&too_many).unwrap());
        let forged = SignedRecord::sign_unchecked(&keys(1), RecordKind::Addresses, value, 1, t(1).unix_ms());
        assert_eq!(forged.check(), Err(RecordError::TooManyVia { count: MAX_VIA + 1 }));
        assert_eq!(forged.via(), None);
        // A huge claimed count is refused before anything is reserved for it.
        let mut value = postcard::to_allocvec(&some_addrs()).unwrap();
        value.extend(postcard::to_allocvec(&u32::MAX).unwrap());
        let forged = SignedRecord::sign_unchecked(&keys(1), RecordKind::Addresses, value, 1, t(1).unix_ms());
        assert!(matches!(forged.check(), Err(RecordError::TooManyVia { .. })));
    }

    #[test]
    fn tampering_with_any_field_fails_verification() {
        for original in [addresses(1, 5), name(1, 5)] {
            for (field, r) in tampered(&original) {
                assert_ne!(r, original, "{field}");
                assert_eq!(r.check(), Err(RecordError::BadSignature), "{field} of {:?}", original.kind);
                assert!(!r.verify(), "{field}");
            }
        }
        // A name record turned into an addresses one fails too (its value is not addresses).
        assert!(!SignedRecord { kind: RecordKind::Addresses, ..name(1, 5) }.verify());
        // Signed by someone else but claiming to be keys(1)'s.
        let forged = SignedRecord { publisher: keys(1).peer_id(), ..addresses(2, 5) };
        assert_eq!(forged.check(), Err(RecordError::BadSignature));
    }

    #[test]
    fn constructors_refuse_oversized_fields() {
        let k = keys(1);
        assert_eq!(
            SignedRecord::addresses(&k, &many_addrs(MAX_ADDRS + 1), 1, t(1)),
            Err(RecordError::TooManyAddrs { count: MAX_ADDRS + 1 })
        );
        assert!(SignedRecord::addresses(&k, &many_addrs(MAX_ADDRS), 1, t(1)).unwrap().verify());

        assert_eq!(
            SignedRecord::name(&k, "alice", vec![0; MAX_VALUE_LEN + 1], 1, t(1)),
            Err(RecordError::ValueTooLong { len: MAX_VALUE_LEN + 1 })
        );
        assert!(SignedRecord::name(&k, "alice", vec![0; MAX_VALUE_LEN], 1, t(1)).unwrap().verify());

        assert_eq!(SignedRecord::name(&k, "", vec![], 1, t(1)), Err(RecordError::NameLength { len: 0 }));
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            SignedRecord::name(&k, &long, vec![], 1, t(1)),
            Err(RecordError::NameLength { len: MAX_NAME_LEN + 1 })
        );
        assert!(SignedRecord::name(&k, &long[1..], vec![], 1, t(1)).unwrap().verify());
    }

    #[test]
    fn verify_refuses_oversized_records_even_when_properly_signed() {
        let k = keys(1);
        let exp = t(60_000).unix_ms();
        let signed = |kind: RecordKind, value: Vec<u8>| SignedRecord::sign_unchecked(&k, kind, value, 1, exp);
        let alice = || RecordKind::Name("alice".into());
        let cases = [
            (signed(alice(), vec![0; MAX_VALUE_LEN + 1]), RecordError::ValueTooLong { len: MAX_VALUE_LEN + 1 }),
            (signed(RecordKind::Name(String::new()), vec![]), RecordError::NameLength { len: 0 }),
            (
                signed(RecordKind::Name("a".repeat(MAX_NAME_LEN + 1)), vec![]),
                RecordError::NameLength { len: MAX_NAME_LEN + 1 },
            ),
            (
                signed(RecordKind::Addresses, postcard::to_allocvec(&many_addrs(MAX_ADDRS + 1)).unwrap()),
                RecordError::TooManyAddrs { count: MAX_ADDRS + 1 },
            ),
            // A length claiming four billion addresses in five bytes: refused before decoding.
            (
                signed(RecordKind::Addresses, vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
                RecordError::TooManyAddrs { count: u32::MAX as usize },
            ),
            (signed(RecordKind::Addresses, vec![0xff; 6]), RecordError::MalformedAddrs),
            (signed(RecordKind::Addresses, vec![]), RecordError::MalformedAddrs),
            // One address claimed, none there.
            (signed(RecordKind::Addresses, vec![1]), RecordError::MalformedAddrs),
        ];
        for (r, why) in cases {
            assert_eq!(r.check(), Err(why.clone()), "{r:?}");
            assert!(!r.verify(), "{why}");
            assert_eq!(r.addrs(), None, "{why}");
        }
    }

    #[test]
    fn only_a_higher_seq_from_the_same_publisher_supersedes() {
        assert!(addresses(1, 2).supersedes(&addresses(1, 1)));
        assert!(!addresses(1, 1).supersedes(&addresses(1, 2)));
        assert!(!addresses(1, 1).supersedes(&addresses(1, 1)), "an equal seq keeps the stored record");
        assert!(!addresses(2, 9).supersedes(&addresses(1, 1)));

        assert!(name(1, 2).supersedes(&name(1, 1)));
        assert!(!name(1, 1).supersedes(&name(1, 2)));
        // The same name from another server: never, however high its seq (and it is stored
        // at another key anyway).
        assert_ne!(name(2, u64::MAX).key(), name(1, 1).key());
        assert!(!name(2, u64::MAX).supersedes(&name(1, 1)));

        // About something else: never (the DHT only compares records at one key anyway).
        let bob = SignedRecord::name(&keys(1), "bob", vec![], 9, t(1)).unwrap();
        assert!(!bob.supersedes(&name(1, 1)));
        assert!(!name(1, 9).supersedes(&addresses(1, 1)));
    }

    #[test]
    fn keys_separate_kinds_peers_and_names() {
        let (a, b) = (keys(1).peer_id(), keys(2).peer_id());
        assert_ne!(addresses_key(&a), addresses_key(&b));
        assert_ne!(name_key(&a, "alice"), name_key(&a, "bob"));
        assert_ne!(name_key(&a, "alice"), name_key(&b, "alice"), "each server has its own slot for a name");
        // The same hashed bytes under the two kinds still give two keys.
        assert_ne!(addresses_key(&a), name_key(&a, ""));
        // A record key is not the peer's routing key.
        assert_ne!(addresses_key(&a), a.key_of());
        // Every version lands on the same key, whatever its value.
        let moved = SignedRecord::addresses(&keys(1), &many_addrs(3), 7, t(5)).unwrap();
        assert_eq!(moved.key(), addresses(1, 1).key());
    }

    #[test]
    fn postcard_round_trip_keeps_records_valid() {
        for r in [addresses(1, 3), name(1, 3)] {
            let bytes = postcard::to_allocvec(&r).unwrap();
            let back: SignedRecord = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, r);
            assert!(back.verify());
            assert_eq!(back.key(), r.key());
        }
    }

    #[test]
    fn a_largest_name_answer_fits_in_a_name_record() {
        use crate::names::{Name, NameAnswer, NameRecord};
        let (owner, server) = (keys(1), keys(3));
        let text = "a".repeat(crate::names::MAX_NAME_LEN);
        let record = NameRecord {
            name: Name::parse(&text).unwrap(),
            value: vec![0xff; crate::names::MAX_VALUE_LEN],
            owner: owner.peer_id(),
            seq: u64::MAX,
            unix_ms: u64::MAX,
            delete: false,
        }
        .sign(&owner);
        let answer = postcard::to_allocvec(&NameAnswer::new(record, u64::MAX, &server)).unwrap();
        assert!(answer.len() <= MAX_VALUE_LEN, "{} bytes", answer.len());
        assert!(SignedRecord::name(&server, &text, answer, 1, t(1)).unwrap().verify());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_error_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(r) = postcard::from_bytes::<SignedRecord>(&bytes) {
                let _ = (r.check(), r.verify(), r.addrs(), r.key(), r.expires());
            }
        }

        #[test]
        fn records_round_trip_and_verify(
            value in proptest::collection::vec(any::<u8>(), 0..=MAX_VALUE_LEN),
            name in "[a-z0-9-]{1,63}",
            ports in proptest::collection::vec(any::<u16>(), 0..=MAX_ADDRS),
            seq in any::<u64>(),
            expires_ms in 0..u64::MAX / 1000,
        ) {
            let expires = Instant::from_unix_ms(expires_ms);
            let addrs: Vec<SocketAddr> = ports.iter().map(|&p| SocketAddr::from(([198, 51, 100, 1], p))).collect();
            let a = SignedRecord::addresses(&keys(1), &addrs, seq, expires).unwrap();
            let n = SignedRecord::name(&keys(2), &name, value, seq, expires).unwrap();
            for r in [a, n] {
                let back: SignedRecord = postcard::from_bytes(&postcard::to_allocvec(&r).unwrap()).unwrap();
                proptest::prop_assert_eq!(&back, &r);
                proptest::prop_assert!(back.verify());
                proptest::prop_assert_eq!(back.expires_ms, expires_ms);
            }
            proptest::prop_assert_eq!(
                SignedRecord::addresses(&keys(1), &addrs, seq, expires).unwrap().addrs(),
                Some(addrs)
            );
        }
    }
}

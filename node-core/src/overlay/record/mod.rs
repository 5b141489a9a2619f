//! The record Weft keeps in its DHT ([`super::kademlia`]): a small value signed by its publisher,
//! stored at a key anyone can derive from what the record is about.
//!
//! Two kinds exist:
//! - [`RecordKind::Addresses`]: where a peer can be dialed, published by the peer itself and stored
//!   at [`addresses_key`] of its id, so a node that knows only a [`PeerId`] can find a way to reach
//!   it without asking a bootstrap server.
//! - [`RecordKind::Name`]: a bootstrap server's answer for a human name, mirrored by any node
//!   that got one ([`SignedRecord::mirror`]): its publisher is the server and its signature the
//!   server's, and it is stored at [`name_key`] of that server and the name (a node knows which
//!   server it trusts, so it can derive the key; another publisher cannot squat it), so names
//!   keep resolving while the server is unreachable.
//!
//! Records are self-certifying: [`SignedRecord::check`] needs nothing but the record, because the
//! publisher's id is its public key. An addresses record's signature covers every field but
//! itself (the postcard encoding of a body under [`signing_domain::DHT_RECORD`], like chat and
//! direct messages); a name record's is the server's signature over the answer, which covers the
//! same ground (see [`SignedRecord::mirror`]). Either way a peer that stores a record can neither
//! change its value, roll back its sequence number, stretch its expiry, nor move it to another
//! key: the key is derived from signed fields only.
//!
//! The size bounds are checked again on every record a peer hands us, before the signature: a
//! record over its bounds is refused whoever signed it, and refusing it costs no signature check.
//!
//! [`RecordKind`] is part of the wire format: new kinds are appended, never inserted.

mod name;

use super::kademlia::{Key, Record};
use crate::identity::{signed_bytes, signing_domain, Keypair, PeerId, Signature};
use crate::time::Instant;
use crate::wire::MAX_ADDRS;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Largest value a record carries, in bytes. Room for a mirrored name record at its largest
/// (a postcard [`SignedNameRecord`](crate::names::SignedNameRecord) with a 512-byte value is
/// about 700 bytes), while keeping what a storing peer must hold per record small.
pub const MAX_VALUE_LEN: usize = 1024;

/// Longest name a name record carries, in bytes: the bootstrap server's own limit
/// ([`crate::names::MAX_NAME_LEN`]), so every name a server serves can be mirrored and nothing
/// longer takes room in the DHT.
pub const MAX_NAME_LEN: usize = crate::names::MAX_NAME_LEN;

/// Longest a name record may be stored for ahead of its expiry: a bootstrap server's longest
/// lease (a week) plus a day of clock skew.
pub const MAX_NAME_TTL: core::time::Duration = core::time::Duration::from_secs(8 * 24 * 3600);

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
    /// A human name, 1 to [`MAX_NAME_LEN`] bytes: a bootstrap server's
    /// [`NameAnswer`](crate::names::NameAnswer) for it, repackaged ([`SignedRecord::mirror`]). The
    /// publisher is the server; the value the postcard encoding of the owner-signed record
    /// ([`SignedNameRecord`](crate::names::SignedNameRecord)); `expires_ms` until when the server
    /// vouches for it; `seq` the owner's `seq` (the registry takes only a strictly higher one for
    /// every write to a name, and a new owner's starts from its clock, so the newer answer
    /// supersedes even when its lease is shorter); the signature is the server's over the
    /// answer. Whoever reads it still checks that the publisher is a server it trusts.
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
    /// A name record whose value is not an owner-signed record of that name in its one
    /// encoding, or whose `seq` is not the owner's.
    #[error("a name record does not hold a server's answer for its name")]
    NotAnAnswer,
    /// The owner's signature (or the value limit) of a mirrored name record fails.
    #[error("the mirrored name record: {0}")]
    Owner(#[from] crate::names::RecordError),
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
        if let RecordKind::Name(name) = &self.kind {
            return name::check(self, name);
        }
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

    /// A name answer may be vouched for up to [`MAX_NAME_TTL`]; addresses get the default.
    fn max_ttl(&self, default: core::time::Duration) -> core::time::Duration {
        match self.kind {
            RecordKind::Addresses => default,
            RecordKind::Name(_) => MAX_NAME_TTL,
        }
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
mod tests;

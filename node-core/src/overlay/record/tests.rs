//! The record kinds, their bounds, signatures and keys.

use super::*;
use crate::names::{Name, NameAnswer, NameRecord};
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

/// Server `server`'s answer for `name`, held by keys(9), vouched for until `expires`.
fn answer(server: u8, name: &str, value: Vec<u8>, expires: Instant) -> NameAnswer {
    answer_seq(server, name, value, 1, expires)
}

/// [`answer`] with the owner's `seq`.
fn answer_seq(server: u8, name: &str, value: Vec<u8>, seq: u64, expires: Instant) -> NameAnswer {
    let owner = keys(9);
    let record =
        NameRecord { name: Name::parse(name).unwrap(), value, owner: owner.peer_id(), seq, unix_ms: 5, delete: false };
    NameAnswer::new(record.sign(&owner), expires.unix_ms(), &keys(server))
}

/// Server `n`'s "alice" at the owner's `seq`, vouched for until t(60_000).
fn name(n: u8, seq: u64) -> SignedRecord {
    SignedRecord::mirror(&answer_seq(n, "alice", b"answer".to_vec(), seq, t(60_000))).unwrap()
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
    assert_eq!(n.publisher, keys(3).peer_id());
    assert_eq!(n.name_answer(), Some(answer(3, "alice", b"answer".to_vec(), t(60_000))));
    assert_eq!(n.addrs(), None);
    assert_eq!(n.key(), name_key(&keys(3).peer_id(), "alice"));
    assert_eq!(n.expires(), t(60_000));
    assert_eq!(a.name_answer(), None);

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
    let value = postcard::to_allocvec(&many_addrs(1)).unwrap();
    let kind = RecordKind::Name("alice".into());
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
    let original = addresses(1, 5);
    for (field, r) in tampered(&original) {
        assert_ne!(r, original, "{field}");
        // Addresses turned into a name fail before the signature: the value is no answer.
        let why = if field == "kind" { RecordError::NotAnAnswer } else { RecordError::BadSignature };
        assert_eq!(r.check(), Err(why), "{field}");
        assert!(!r.verify(), "{field}");
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

    // A server that signed an owner's value over the names limit: the record is refused.
    let over = crate::names::MAX_VALUE_LEN + 1;
    assert_eq!(
        SignedRecord::mirror(&answer(3, "alice", vec![0; over], t(1))),
        Err(RecordError::Owner(crate::names::RecordError::ValueTooLong(over)))
    );
    let longest = "a".repeat(MAX_NAME_LEN);
    assert!(SignedRecord::mirror(&answer(3, &longest, vec![0; over - 1], t(1))).unwrap().verify());
}

#[test]
fn a_name_record_is_the_servers_answer_and_nothing_else() {
    let good = name(3, 5);
    let answer = good.name_answer().unwrap();
    // Every field changed on its own: none verifies.
    let mut other_value = answer.record.clone();
    other_value.record.value = b"forged".to_vec();
    let mut resigned = answer.record.clone();
    resigned.record.value = b"forged".to_vec();
    let resigned = resigned.record.sign(&keys(9));
    let mut appended = good.value.clone();
    appended.push(0);
    let mut signature = good.signature.to_bytes();
    signature[10] ^= 1;
    let cases = [
        (
            "value",
            SignedRecord { value: postcard::to_allocvec(&other_value).unwrap(), ..good.clone() },
            RecordError::Owner(crate::names::RecordError::BadSignature),
        ),
        // The owner signed it, but the server vouched for something else.
        (
            "value (re-signed by the owner)",
            SignedRecord { value: postcard::to_allocvec(&resigned).unwrap(), ..good.clone() },
            RecordError::BadSignature,
        ),
        ("value (appended)", SignedRecord { value: appended, ..good.clone() }, RecordError::NotAnAnswer),
        ("value (garbage)", SignedRecord { value: vec![0xff; 40], ..good.clone() }, RecordError::NotAnAnswer),
        ("seq", SignedRecord { seq: good.seq + 1, ..good.clone() }, RecordError::NotAnAnswer),
        ("expires", SignedRecord { expires_ms: good.expires_ms + 1, ..good.clone() }, RecordError::BadSignature),
        ("publisher", SignedRecord { publisher: keys(2).peer_id(), ..good.clone() }, RecordError::BadSignature),
        ("kind", SignedRecord { kind: RecordKind::Name("bob".into()), ..good.clone() }, RecordError::NotAnAnswer),
        (
            "signature",
            SignedRecord { signature: Signature::from_bytes(signature), ..good.clone() },
            RecordError::BadSignature,
        ),
    ];
    for (field, r, why) in cases {
        assert_eq!(r.check(), Err(why), "{field}");
        assert!(!r.verify(), "{field}");
    }
    // An answer whose server signature is bad is not mirrored at all.
    let forged = NameAnswer { server_key: keys(2).peer_id(), ..answer.clone() };
    assert_eq!(SignedRecord::mirror(&forged), Err(RecordError::BadSignature));
    // A record signed over the addresses body, as any publisher could: not an answer.
    let fake = SignedRecord::sign_unchecked(&keys(3), good.kind.clone(), good.value.clone(), good.seq, good.expires_ms);
    assert_eq!(fake.check(), Err(RecordError::BadSignature));
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
    // A later write is vouched for less long (the owner's address has used up its quota): it
    // still supersedes, by the owner's seq.
    let shorter = SignedRecord::mirror(&answer_seq(1, "alice", b"moved".to_vec(), 3, t(30_000))).unwrap();
    assert!(shorter.supersedes(&name(1, 2)));
    assert!(!name(1, 2).supersedes(&shorter));
    // The same name from another server: never, however high its seq (and it is stored at
    // another key anyway).
    assert_ne!(name(2, u64::MAX).key(), name(1, 1).key());
    assert!(!name(2, u64::MAX).supersedes(&name(1, 1)));

    // About something else: never (the DHT only compares records at one key anyway).
    let bob = SignedRecord::mirror(&answer_seq(1, "bob", vec![], 9, t(60_000))).unwrap();
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
    let answer = NameAnswer::new(record, u64::MAX, &server);
    let mirrored = SignedRecord::mirror(&answer).unwrap();
    assert!(mirrored.value.len() <= MAX_VALUE_LEN, "{} bytes", mirrored.value.len());
    assert!(mirrored.verify());
    assert_eq!(mirrored.name_answer(), Some(answer));
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
        value in proptest::collection::vec(any::<u8>(), 0..=crate::names::MAX_VALUE_LEN),
        name in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        ports in proptest::collection::vec(any::<u16>(), 0..=MAX_ADDRS),
        seq in any::<u64>(),
        expires_ms in 0..u64::MAX / 1000,
    ) {
        let expires = Instant::from_unix_ms(expires_ms);
        let addrs: Vec<SocketAddr> = ports.iter().map(|&p| SocketAddr::from(([198, 51, 100, 1], p))).collect();
        let a = SignedRecord::addresses(&keys(1), &addrs, seq, expires).unwrap();
        let n = SignedRecord::mirror(&answer(2, &name, value, expires)).unwrap();
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

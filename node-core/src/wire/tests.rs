use super::*;
use crate::identity::{PeerId, Signature};
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};

fn peer_id() -> impl Strategy<Value = PeerId> {
    any::<[u8; 32]>().prop_map(PeerId::from_bytes)
}

fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature::from_bytes(s)
    })
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn peer_info() -> impl Strategy<Value = PeerInfo> {
    (peer_id(), text(), proptest::collection::vec(addr(), 0..4), any::<u64>())
        .prop_map(|(peer_id, name, addrs, caps)| PeerInfo { peer_id, name, addrs, capabilities: Capabilities(caps) })
}

fn message() -> impl Strategy<Value = Message> {
    let tid = any::<[u8; 16]>().prop_map(TransferId);
    prop_oneof![
        (
            any::<u16>(),
            peer_id(),
            text(),
            text(),
            any::<Option<u16>>(),
            proptest::collection::vec(addr(), 0..4),
            any::<u64>()
        )
            .prop_map(|(protocol_version, peer_id, name, mesh_id, listen_port, listen_addrs, caps)| {
                Message::Hello(Hello {
                    protocol_version,
                    peer_id,
                    name,
                    mesh_id,
                    listen_port,
                    listen_addrs,
                    capabilities: Capabilities(caps),
                })
            }),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
        Just(Message::PeerRequest),
        proptest::collection::vec(peer_info(), 0..5).prop_map(|peers| Message::PeerExchange { peers }),
        (any::<[u8; 16]>(), peer_id(), text(), text(), any::<u64>(), signature(), any::<u8>()).prop_map(
            |(id, author, author_name, text, unix_ms, signature, hops)| Message::Chat(Signed {
                body: ChatBody { msg_id: MsgId(id), author, author_name, text, unix_ms },
                signature,
                hops,
            })
        ),
        (any::<[u8; 16]>(), peer_id(), peer_id(), text(), any::<u64>(), signature(), any::<u8>()).prop_map(
            |(id, author, to, text, unix_ms, signature, hops)| Message::Direct(Signed {
                body: DirectBody { msg_id: MsgId(id), author, to, text, unix_ms },
                signature,
                hops,
            })
        ),
        (tid.clone(), text(), any::<u64>(), any::<u32>(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(
            |(transfer_id, name, size, chunk_size, file_hash, hash_list_hash)| Message::Offer(Offer {
                transfer_id,
                name,
                size,
                chunk_size,
                file_hash,
                hash_list_hash,
            })
        ),
        (tid.clone(), any::<u32>()).prop_map(|(transfer_id, start)| Message::HashesRequest { transfer_id, start }),
        (tid.clone(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..96))
            .prop_map(|(transfer_id, start, hashes)| Message::Hashes { transfer_id, start, hashes }),
        (tid.clone(), proptest::collection::vec(any::<u32>(), 0..8))
            .prop_map(|(transfer_id, chunks)| Message::Want { transfer_id, chunks }),
        (tid.clone(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..512))
            .prop_map(|(transfer_id, index, data)| Message::Chunk { transfer_id, index, data }),
        tid.clone().prop_map(|transfer_id| Message::TransferComplete { transfer_id }),
        (tid, text()).prop_map(|(transfer_id, reason)| Message::TransferCancel { transfer_id, reason }),
        text().prop_map(|reason| Message::Goodbye { reason }),
        (
            peer_id(),
            peer_id(),
            any::<[u8; 16]>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..128),
            signature(),
            any::<u8>()
        )
            .prop_map(|(from, to, nonce, unix_ms, sealed, signature, hops)| Message::Signal {
                envelope: crate::envelope::Envelope { from, to, nonce, unix_ms, sealed, signature },
                hops,
            }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = encode(&msg);
        prop_assert_eq!(decode(&bytes), Ok(Decoded::Message(msg)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(Decoded::Message(m)) = decode(&bytes) {
            let _ = m.validate();
        }
    }

    #[test]
    fn appended_fields_from_a_newer_version_are_ignored(msg in message(), extra in proptest::collection::vec(any::<u8>(), 1..16)) {
        let mut bytes = encode(&msg);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(decode(&bytes), Ok(Decoded::Message(msg)));
    }
}

#[test]
fn the_kind_count_matches_the_enum() {
    // The last variant's kind must be KIND_COUNT - 1, or unknown-kind detection is off by some.
    let k = crate::identity::Keypair::from_secret([1; 32]);
    let envelope = crate::envelope::Envelope {
        from: k.peer_id(),
        to: k.peer_id(),
        nonce: [0; 16],
        unix_ms: 0,
        sealed: Vec::new(),
        signature: k.sign(b"x"),
    };
    let signal = encode(&Message::Signal { envelope, hops: 0 });
    assert_eq!(u32::from(signal[0]), Message::KIND_COUNT - 2);
    let prune = crate::overlay::Message::Broadcast(crate::overlay::plumtree::Message::Prune {
        origin: k.peer_id(),
        shared: true,
    });
    let last = encode(&Message::Overlay { message: prune, hints: Vec::new() });
    assert_eq!(u32::from(last[0]), Message::KIND_COUNT - 1);
}

#[test]
fn unknown_kinds_are_reported_not_errors() {
    assert_eq!(decode(&[0x7f, 1, 2, 3]), Ok(Decoded::UnknownKind(0x7f)));
    assert_eq!(decode(&[0x80, 0x01]), Ok(Decoded::UnknownKind(128)));
    assert_eq!(decode(&[]), Err(DecodeError::NoKind));
    assert!(matches!(decode(&[0]), Err(DecodeError::Malformed { kind: 0, .. })));
}

#[test]
fn offers_with_too_many_chunks_are_invalid() {
    let offer = |size, chunk_size| {
        Message::Offer(Offer {
            transfer_id: TransferId([0; 16]),
            name: "f".into(),
            size,
            chunk_size,
            file_hash: [0; 32],
            hash_list_hash: [0; 32],
        })
    };
    assert!(offer(MAX_FILE_SIZE, MAX_CHUNK_SIZE).validate().is_ok());
    assert!(offer(MAX_FILE_SIZE, 1).validate().is_err(), "64 GiB of 1-byte chunks");
    assert!(offer(MAX_CHUNKS + 1, 1).validate().is_err());
    assert!(offer(MAX_CHUNKS, 1).validate().is_ok());
    assert!(offer(MAX_FILE_SIZE + 1, MAX_CHUNK_SIZE).validate().is_err());
}

#[test]
fn validate_rejects_oversized_fields() {
    let m = Message::Want { transfer_id: TransferId([0; 16]), chunks: vec![0; MAX_WANT + 1] };
    assert!(m.validate().is_err());
    let m = Message::Hashes { transfer_id: TransferId([0; 16]), start: 0, hashes: vec![0; 33] };
    assert!(m.validate().is_err());
}

//! The transfer engine on its own: offers, requests, verification, resume.

use super::*;
use crate::wire::Offer;

fn peer(n: u8) -> PeerId {
    PeerId::from_bytes([n; 32])
}

fn sends(actions: &[Action]) -> Vec<Message> {
    actions.iter().filter_map(|a| if let Action::Send { msg, .. } = a { Some(msg.clone()) } else { None }).collect()
}

fn offered(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Output(Output::Event(Event::TransferOffered { .. }))))
}

/// Runs one single-chunk download from `a` to the end; returns the engine and the offer.
fn finished_download() -> (Transfers, Offer) {
    let now = Instant::from_unix_ms(0);
    let data = b"hello".to_vec();
    let chunk_hash = *blake3::hash(&data).as_bytes();
    let offer = Offer {
        transfer_id: TransferId([1; 16]),
        name: "h".into(),
        size: 5,
        chunk_size: 1024,
        file_hash: *blake3::hash(&data).as_bytes(),
        hash_list_hash: hash_list_hash(&[chunk_hash]),
    };
    let (a, tid, file) = (peer(1), offer.transfer_id, FileHash(offer.file_hash));
    let mut tr = Transfers::new(4);
    tr.on_peer_connected(now, a);
    assert!(offered(&tr.on_message(now, a, Message::Offer(offer.clone()))));
    let acts = tr.accept(now, a, tid, vec![]).unwrap();
    assert!(matches!(sends(&acts)[..], [Message::HashesRequest { start: 0, .. }]));
    let acts = tr.on_message(now, a, Message::Hashes { transfer_id: tid, start: 0, hashes: chunk_hash.to_vec() });
    assert!(matches!(&sends(&acts)[..], [Message::Want { chunks, .. }] if chunks == &vec![0]));
    let acts = tr.on_message(now, a, Message::Chunk { transfer_id: tid, index: 0, data });
    assert!(acts.iter().any(|a| matches!(a, Action::Output(Output::WriteChunk { .. }))));
    let acts = tr.on_chunk_written(now, file, 0);
    assert!(acts.iter().any(|a| matches!(a, Action::Output(Output::FinalizeDownload { .. }))));
    let acts = tr.on_finalized(file, Ok("/d/h".into()));
    assert!(matches!(sends(&acts)[..], [Message::TransferComplete { .. }]));
    (tr, offer)
}

#[test]
fn a_re_offer_of_a_finished_transfer_is_answered_not_fetched_again() {
    let (mut tr, offer) = finished_download();
    let acts = tr.on_message(Instant::from_unix_ms(1), peer(1), Message::Offer(offer));
    assert!(!offered(&acts), "no second download");
    assert!(matches!(sends(&acts)[..], [Message::TransferComplete { .. }]));
}

#[test]
fn a_conflicting_description_of_content_in_progress_is_refused() {
    let now = Instant::from_unix_ms(0);
    let offer = Offer {
        transfer_id: TransferId([1; 16]),
        name: "f".into(),
        size: 10_000,
        chunk_size: 1024,
        file_hash: [9; 32],
        hash_list_hash: [1; 32],
    };
    let mut tr = Transfers::new(4);
    tr.on_peer_connected(now, peer(1));
    tr.on_peer_connected(now, peer(2));
    tr.on_message(now, peer(1), Message::Offer(offer.clone()));
    tr.accept(now, peer(1), offer.transfer_id, vec![]).unwrap();
    let liar = Offer { transfer_id: TransferId([2; 16]), hash_list_hash: [2; 32], ..offer };
    let acts = tr.on_message(now, peer(2), Message::Offer(liar));
    assert!(matches!(sends(&acts)[..], [Message::TransferCancel { .. }]));
    // A hash page from the liar, who was never asked, is ignored rather than trusted.
    let acts = tr.on_message(
        now,
        peer(2),
        Message::Hashes { transfer_id: TransferId([2; 16]), start: 0, hashes: vec![0; 320] },
    );
    assert!(acts.is_empty());
}

#[test]
fn a_sender_that_restarts_with_a_new_id_is_asked_again_at_once() {
    let t0 = Instant::from_unix_ms(0);
    let chunk = vec![7u8; 1024];
    let hashes: Vec<[u8; 32]> = (0..4).map(|_| *blake3::hash(&chunk).as_bytes()).collect();
    let offer = Offer {
        transfer_id: TransferId([1; 16]),
        name: "f".into(),
        size: 4096,
        chunk_size: 1024,
        file_hash: [5; 32],
        hash_list_hash: hash_list_hash(&hashes),
    };
    let a = peer(1);
    let mut tr = Transfers::new(4);
    tr.on_peer_connected(t0, a);
    tr.on_message(t0, a, Message::Offer(offer.clone()));
    tr.accept(t0, a, offer.transfer_id, vec![]).unwrap();
    let acts =
        tr.on_message(t0, a, Message::Hashes { transfer_id: offer.transfer_id, start: 0, hashes: hashes.concat() });
    assert!(matches!(&sends(&acts)[..], [Message::Want { .. }]));
    // The sender goes away and comes back as a new instance: the reconnect re-asks under the
    // old id, which it no longer knows; then it re-offers the same file under a new id.
    tr.on_peer_disconnected(t0, a);
    let acts = tr.on_peer_connected(t0, a);
    assert!(matches!(&sends(&acts)[..], [Message::Want { transfer_id, .. }] if *transfer_id == offer.transfer_id));
    let renewed = Offer { transfer_id: TransferId([2; 16]), ..offer.clone() };
    let acts = tr.on_message(t0, a, Message::Offer(renewed.clone()));
    let wants: Vec<&Message> = acts
        .iter()
        .filter_map(|x| match x {
            Action::Send { msg: m @ Message::Want { transfer_id, .. }, .. } if *transfer_id == renewed.transfer_id => {
                Some(m)
            }
            _ => None,
        })
        .collect();
    assert!(!wants.is_empty(), "the missing chunks are asked for under the new id at once: {acts:?}");
    // The old instance's refusal of the old id arrives late and changes nothing.
    let acts = tr.on_message(
        t0,
        a,
        Message::TransferCancel { transfer_id: offer.transfer_id, reason: "unknown transfer".into() },
    );
    assert!(acts.is_empty(), "{acts:?}");
}

#[test]
fn one_peer_cannot_take_every_download_slot() {
    let now = Instant::from_unix_ms(0);
    let mut tr = Transfers::new(4);
    let mut refused = 0;
    for i in 0..10u8 {
        let offer = Offer {
            transfer_id: TransferId([i; 16]),
            name: "f".into(),
            size: 10,
            chunk_size: 1024,
            file_hash: [i; 32],
            hash_list_hash: [0; 32],
        };
        let acts = tr.on_message(now, peer(1), Message::Offer(offer));
        refused += usize::from(matches!(sends(&acts)[..], [Message::TransferCancel { .. }]));
    }
    assert_eq!(refused, 10 - MAX_PER_PEER);
}

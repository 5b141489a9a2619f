//! The node in the overlay: bounds on overlay messages, forged and mislabelled chats.
use super::*;
use crate::overlay::{plumtree, Message as O};

/// A frame carrying `chat` as PlumTree gossip from `origin`.
fn chat_gossip(chat: &wire::Signed<wire::ChatBody>, origin: PeerId, hops: u16) -> Vec<u8> {
    let gossip = O::Broadcast(plumtree::Message::Gossip {
        id: crate::node::overlay::chat_gossip_id(&chat.body.msg_id),
        origin,
        hops,
        shared: true,
        payload: postcard::to_allocvec(chat).unwrap(),
    });
    wire::encode(&Message::Overlay { message: gossip, hints: Vec::new() })
}

#[test]
fn overlay_messages_over_their_bounds_close_the_link() {
    use crate::overlay::hyparview;
    let oversized = [
        O::Membership(hyparview::Message::Shuffle {
            origin: keys(2).peer_id(),
            peers: vec![keys(3).peer_id(); 10_000],
            ttl: 1,
        }),
        O::Broadcast(plumtree::Message::IHave((0..10_000u32).map(|i| ([i as u8; 32], 1)).collect())),
        O::Broadcast(plumtree::Message::Gossip {
            id: [1; 32],
            origin: keys(2).peer_id(),
            hops: 1,
            shared: true,
            payload: vec![0; wire::MAX_GOSSIP_LEN + 1],
        }),
    ];
    for (i, message) in oversized.into_iter().enumerate() {
        let mut n = node(1);
        let link = neighbor_up(&mut n, &keys(2), t(0));
        drain(&mut n);
        n.handle(t(1), Input::Frame { link, data: wire::encode(&Message::Overlay { message, hints: Vec::new() }) });
        assert!(closed(&drain(&mut n), link), "case {i}");
        assert_eq!(n.stats().misbehaving_links, 1, "case {i}");
    }
}

#[test]
fn a_forged_chat_in_the_overlay_stops_at_the_first_node_and_costs_the_forger_its_link() {
    let mut n = node(1);
    let honest = neighbor_up(&mut n, &keys(3), t(0));
    let forger = neighbor_up(&mut n, &keys(2), t(0));
    drain(&mut n);
    let body = wire::ChatBody {
        msg_id: wire::MsgId([7; 16]),
        author: keys(4).peer_id(),
        author_name: "someone else".into(),
        text: "forged".into(),
        unix_ms: t(1).unix_ms(),
    };
    let signature = keys(2).sign(b"not the author's signature");
    let chat = wire::Signed { body, signature, hops: 3 };
    n.handle(t(1), Input::Frame { link: forger, data: chat_gossip(&chat, keys(4).peer_id(), 1) });
    let outs = drain(&mut n);
    assert!(closed(&outs, forger));
    assert!(!outs.iter().any(|o| matches!(o, Output::Event(Event::Chat { .. }))), "not delivered");
    let passed_on = outs.iter().any(|o| matches!(o, Output::SendFrame { link, .. } if *link == honest));
    assert!(!passed_on, "not passed on to the honest neighbour");
    assert_eq!(n.stats().bad_signatures, 1);
}

#[test]
fn a_chat_under_another_origin_than_its_author_costs_the_sender_its_link() {
    let mut n = node(1);
    let liar = neighbor_up(&mut n, &keys(2), t(0));
    drain(&mut n);
    // A real chat by 4, sent under a made-up origin: it would only push real senders' trees out.
    let author = keys(4);
    let body = wire::ChatBody {
        msg_id: MsgId([8; 16]),
        author: author.peer_id(),
        author_name: "four".into(),
        text: "hello".into(),
        unix_ms: t(1).unix_ms(),
    };
    let chat = signed_chat(&author, body);
    n.handle(t(1), Input::Frame { link: liar, data: chat_gossip(&chat, keys(5).peer_id(), 2) });
    let outs = drain(&mut n);
    assert!(closed(&outs, liar));
    assert!(!outs.iter().any(|o| matches!(o, Output::Event(Event::Chat { .. }))), "not delivered");
    assert_eq!(n.overlay.overlay.broadcast_state().origin_trees(), 0, "no tree for the made-up origin");
}

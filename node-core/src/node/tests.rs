//! Unit tests of the node with hand-built instants and hand-fed inputs.

use super::*;
use crate::discovery::Announcement;
use crate::interface::{DatagramDest, Direction, LinkKind};
use crate::wire::{Capabilities, Hello};
use std::net::SocketAddr;

fn t(ms: u64) -> Instant {
    Instant::from_unix_ms(1_700_000_000_000 + ms)
}

fn keys(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}

fn node(seed: u8) -> Node {
    let config = Config { tcp_port: Some(4000), name: format!("n{seed}"), ..Config::default() };
    Node::new(config, keys(seed), u64::from(seed), t(0))
}

fn drain(n: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| n.poll_output()).collect()
}

fn hello(k: &Keypair, mesh: &str) -> Vec<u8> {
    wire::encode(&Message::Hello(Hello {
        protocol_version: wire::PROTOCOL_VERSION,
        peer_id: k.peer_id(),
        name: "peer".into(),
        mesh_id: mesh.into(),
        listen_port: Some(5000),
        listen_addrs: vec![],
        capabilities: Capabilities(0),
    }))
}

/// A signed announcement by `k` for mesh "default".
fn announcement(k: &Keypair, tcp_port: u16, at: Instant, nonce: u64) -> Vec<u8> {
    Announcement {
        peer_id: k.peer_id(),
        name: "x".into(),
        mesh_id: "default".into(),
        tcp_port,
        quic_port: None,
        http_port: None,
        unix_ms: at.unix_ms(),
        nonce,
    }
    .encode_signed(k)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// An inbound link the transport authenticated as `peer`, before any frame.
fn transport_up(n: &mut Node, peer: PeerId, now: Instant) -> LinkId {
    let link = n.allocate_link_id();
    let remote_addr = addr("10.0.0.9:3333");
    n.handle(now, Input::LinkUp { link, peer, direction: Direction::Inbound, remote_addr, kind: LinkKind::Tcp });
    link
}

/// Brings up an inbound link the transport authenticated as `peer`, and feeds it `hello`.
fn inbound(n: &mut Node, peer: &Keypair, hello: Vec<u8>, now: Instant) -> LinkId {
    let link = transport_up(n, peer.peer_id(), now);
    n.handle(now, Input::Frame { link, data: hello });
    link
}

/// An inbound link from `peer` with a correct Hello.
fn link_up(n: &mut Node, peer: &Keypair, now: Instant) -> LinkId {
    inbound(n, peer, hello(peer, "default"), now)
}

/// A linked peer that joins the overlay through us: an active neighbor, whose link is kept.
fn neighbor_up(n: &mut Node, peer: &Keypair, now: Instant) -> LinkId {
    let link = link_up(n, peer, now);
    let join = crate::overlay::Message::Membership(crate::overlay::hyparview::Message::Join);
    n.handle(now, Input::Frame { link, data: wire::encode(&Message::Overlay { message: join, hints: Vec::new() }) });
    link
}

/// `body` signed by its author, as a chat.
fn signed_chat(author: &Keypair, body: wire::ChatBody) -> wire::Signed<wire::ChatBody> {
    let bytes = postcard::to_allocvec(&body).unwrap();
    let signature = author.sign(&crate::identity::signed_bytes(crate::identity::signing_domain::CHAT, &bytes));
    wire::Signed { body, signature, hops: 3 }
}

fn closed(outs: &[Output], link: LinkId) -> bool {
    outs.iter().any(|o| matches!(o, Output::CloseLink { link: l, .. } if *l == link))
}

fn connected_events(outs: &[Output]) -> usize {
    outs.iter().filter(|o| matches!(o, Output::Event(Event::PeerConnected { .. }))).count()
}

#[test]
fn a_hello_naming_another_identity_is_refused() {
    let mut n = node(1);
    drain(&mut n);
    let link = inbound(&mut n, &keys(2), hello(&keys(3), "default"), t(1));
    let outs = drain(&mut n);
    assert!(closed(&outs, link));
    assert_eq!(connected_events(&outs), 0);
    assert_eq!(n.stats().misbehaving_links, 1);
}

#[test]
fn a_hello_from_another_mesh_is_refused_without_blame() {
    let mut n = node(1);
    let link = inbound(&mut n, &keys(2), hello(&keys(2), "other"), t(1));
    let outs = drain(&mut n);
    assert!(closed(&outs, link));
    assert_eq!(n.stats().misbehaving_links, 0);
}

#[test]
fn unknown_kinds_are_skipped_and_counted_but_garbage_closes_the_link() {
    let mut n = node(1);
    let peer = keys(2);
    let link = link_up(&mut n, &peer, t(1));
    assert_eq!(connected_events(&drain(&mut n)), 1);
    n.handle(t(2), Input::Frame { link, data: vec![0x7f, 1, 2, 3] });
    assert!(!closed(&drain(&mut n), link));
    assert_eq!(n.stats().unknown_kinds, 1);
    n.handle(t(3), Input::Frame { link, data: vec![1] }); // a Ping with no nonce
    assert!(closed(&drain(&mut n), link));
    assert!(n.peers().is_empty());
}

#[test]
fn silent_links_are_pinged_then_dropped() {
    let mut n = node(1);
    let link = neighbor_up(&mut n, &keys(2), t(0));
    drain(&mut n);
    n.handle_timeout(t(16_000));
    let outs = drain(&mut n);
    let pinged = outs.iter().any(|o| {
        matches!(o, Output::SendFrame { link: l, data } if *l == link
        && matches!(wire::decode(data), Ok(wire::Decoded::Message(Message::Ping { .. }))))
    });
    assert!(pinged, "a quiet link gets a ping after 15 s");
    n.handle_timeout(t(46_000));
    let outs = drain(&mut n);
    assert!(closed(&outs, link), "no answer for 45 s closes the link");
    assert!(outs.iter().any(|o| matches!(o, Output::Event(Event::PeerDisconnected { .. }))));
}

#[test]
fn the_peer_limit_refuses_extra_links_with_a_peer_list() {
    let mut n = Node::new(Config { max_peers: 2, tcp_port: Some(4000), ..Config::default() }, keys(1), 1, t(0));
    link_up(&mut n, &keys(2), t(1));
    link_up(&mut n, &keys(3), t(1));
    drain(&mut n);
    let third = link_up(&mut n, &keys(4), t(2));
    let outs = drain(&mut n);
    assert!(closed(&outs, third));
    let told_peers = outs.iter().any(|o| matches!(o, Output::SendFrame { link, data } if *link == third
        && matches!(wire::decode(data), Ok(wire::Decoded::Message(Message::PeerExchange { ref peers })) if peers.len() == 2)));
    assert!(told_peers, "the refused peer learns where else to go");
    assert_eq!(n.peers().len(), 2);
}

#[test]
fn announcements_are_verified_and_dialed_at_their_source_address() {
    let mut n = node(1);
    drain(&mut n);
    let other = keys(9);
    let data = announcement(&other, 7777, t(10), 5);
    n.handle(t(10), Input::Datagram { from: addr("192.0.2.7:47470"), data: data.clone() });
    let outs = drain(&mut n);
    assert!(outs.iter().any(|o| matches!(o, Output::Event(Event::PeerDiscovered { addr, .. }) if *addr == SocketAddr::from(([192, 0, 2, 7], 7777)))));
    assert!(
        outs.iter().any(
            |o| matches!(o, Output::Transmit { dest: DatagramDest::Unicast(to), .. } if *to == addr("192.0.2.7:47470"))
        ),
        "a newly seen node gets an immediate unicast reply"
    );
    // keys(1) < keys(9)? Whoever is lower dials at once; otherwise after a short delay.
    n.handle_timeout(t(2_000));
    let mut all = outs;
    all.extend(drain(&mut n));
    let dials: Vec<SocketAddr> = all
        .iter()
        .filter_map(|o| match o {
            Output::OpenLink { addr, expect, .. } if *expect == Some(other.peer_id()) => Some(*addr),
            _ => None,
        })
        .collect();
    assert_eq!(dials, vec![SocketAddr::from(([192, 0, 2, 7], 7777))]);

    // The same datagram again is a replay; a tampered one fails its signature.
    n.handle(t(20), Input::Datagram { from: addr("192.0.2.8:47470"), data: data.clone() });
    assert_eq!(n.stats().replayed_announcements, 1);
    let mut bad = data;
    let last = bad.len() - 1;
    bad[last] ^= 1;
    n.handle(t(30), Input::Datagram { from: addr("192.0.2.8:47470"), data: bad });
    assert_eq!(n.stats().bad_datagrams, 1);
    assert!(drain(&mut n).iter().all(|o| !matches!(o, Output::OpenLink { .. })));
}

#[test]
fn chats_with_a_forged_author_are_dropped() {
    let mut n = node(1);
    let link = link_up(&mut n, &keys(2), t(0));
    drain(&mut n);
    let body = wire::ChatBody {
        msg_id: MsgId([1; 16]),
        author: keys(3).peer_id(),
        author_name: "x".into(),
        text: "hi".into(),
        unix_ms: t(1).unix_ms(),
    };
    let signature = keys(2).sign(b"not the body");
    n.handle(
        t(1),
        Input::Frame { link, data: wire::encode(&Message::Chat(wire::Signed { body, signature, hops: 3 })) },
    );
    let outs = drain(&mut n);
    assert!(outs.iter().all(|o| !matches!(o, Output::Event(Event::Chat { .. }))));
    assert_eq!(n.stats().bad_signatures, 1);
}

#[test]
fn commands_check_their_input() {
    let mut n = node(1);
    let long = "x".repeat(wire::MAX_TEXT_LEN + 1);
    assert!(matches!(n.command(t(0), Command::Chat { text: long }), Err(CommandError::TextTooLong { .. })));
    assert_eq!(
        n.command(t(0), Command::Direct { to: keys(1).peer_id(), text: "me".into() }),
        Err(CommandError::SelfTarget)
    );
    assert!(matches!(
        n.command(t(0), Command::Direct { to: keys(2).peer_id(), text: "x".into() }),
        Err(CommandError::NotConnected(_))
    ));
    let bad_offer = Command::OfferFile {
        to: keys(2).peer_id(),
        name: "f".into(),
        size: 10,
        chunk_size: 4,
        file: crate::FileHash([0; 32]),
        chunk_hashes: vec![],
    };
    assert!(matches!(n.command(t(0), bad_offer), Err(CommandError::InvalidFile(_))));
}

#[test]
fn a_link_that_never_says_hello_is_closed_even_if_it_keeps_talking() {
    let mut n = node(1);
    let link = transport_up(&mut n, keys(2).peer_id(), t(0));
    drain(&mut n);
    for s in 1..=11u64 {
        // Unknown-kind frames are skipped, but they do not buy time before Hello.
        n.handle(t(s * 1000), Input::Frame { link, data: vec![0x7f] });
        n.handle_timeout(t(s * 1000));
    }
    assert!(closed(&drain(&mut n), link));
}

#[test]
fn links_waiting_for_hello_are_capped() {
    let mut n = node(1);
    let mut outs = Vec::new();
    let mut ids = Vec::new();
    for i in 0..40u8 {
        let link = transport_up(&mut n, keys(100 + i).peer_id(), t(1));
        outs.extend(drain(&mut n));
        ids.push(link);
    }
    let refused = ids.iter().filter(|l| closed(&outs, **l)).count();
    assert_eq!(refused, 40 - 32, "32 may wait for Hello at once");
}

#[test]
fn a_replaced_duplicate_link_is_not_a_second_connection() {
    // keys(1) dials keys(2) and keys(2) dials keys(1); the lower id's outbound link survives.
    let (me, other) = (keys(1), keys(2));
    let mut n = Node::new(Config { tcp_port: Some(4000), ..Config::default() }, me.clone(), 1, t(0));
    let inbound = link_up(&mut n, &other, t(1));
    assert_eq!(connected_events(&drain(&mut n)), 1);
    let out = n.allocate_link_id();
    n.handle(
        t(2),
        Input::LinkUp {
            link: out,
            peer: other.peer_id(),
            direction: Direction::Outbound,
            remote_addr: addr("10.0.0.9:5000"),
            kind: LinkKind::Tcp,
        },
    );
    n.handle(t(2), Input::Frame { link: out, data: hello(&other, "default") });
    let outs = drain(&mut n);
    let keep_outbound = me.peer_id() < other.peer_id();
    let dropped = if keep_outbound { inbound } else { out };
    assert!(closed(&outs, dropped));
    assert_eq!(connected_events(&outs), 0, "no second PeerConnected");
    assert!(outs.iter().all(|o| !matches!(o, Output::Event(Event::PeerDisconnected { .. }))));
    assert_eq!(n.peers().len(), 1);
}

#[test]
fn unasked_peer_lists_are_ignored() {
    let mut n = node(1);
    let link = link_up(&mut n, &keys(2), t(0));
    drain(&mut n);
    let list = |seed: u8| {
        wire::encode(&Message::PeerExchange {
            peers: vec![wire::PeerInfo {
                peer_id: keys(seed).peer_id(),
                name: "x".into(),
                addrs: vec![addr("192.0.2.1:9")],
                capabilities: wire::Capabilities(wire::Capabilities::TCP),
            }],
        })
    };
    // One share on connect and one answer to our request are taken; the rest are not.
    for seed in 50..60 {
        n.handle(t(1), Input::Frame { link, data: list(seed) });
    }
    assert_eq!(n.known_peers().len(), 1 + 2);
    assert_eq!(n.stats().unsolicited_exchanges, 8);
}

#[test]
fn chats_from_far_outside_the_clock_window_are_dropped() {
    let mut n = node(1);
    let link = link_up(&mut n, &keys(2), t(0));
    drain(&mut n);
    let author = keys(3);
    let body = wire::ChatBody {
        msg_id: MsgId([2; 16]),
        author: author.peer_id(),
        author_name: "x".into(),
        text: "old".into(),
        unix_ms: t(0).unix_ms() - 2 * 3_600_000,
    };
    n.handle(t(1), Input::Frame { link, data: wire::encode(&Message::Chat(signed_chat(&author, body))) });
    assert!(drain(&mut n).iter().all(|o| !matches!(o, Output::Event(Event::Chat { .. }))));
    assert_eq!(n.stats().stale_messages, 1);
}

#[test]
fn the_ipv4_copy_of_an_announcement_wins_over_an_earlier_link_local_one() {
    let mut n = node(9); // keys(9) vs keys(8): whichever is lower, the dial waits out the grace
    drain(&mut n);
    let other = keys(8);
    let data = announcement(&other, 7777, t(10), 1);
    n.handle(t(10), Input::Datagram { from: addr("[fe80::1%2]:47470"), data: data.clone() });
    n.handle(t(20), Input::Datagram { from: addr("10.0.0.8:47470"), data });
    assert_eq!(n.stats().replayed_announcements, 1);
    n.handle_timeout(t(2_000));
    let dials: Vec<SocketAddr> = drain(&mut n)
        .into_iter()
        .filter_map(|o| match o {
            Output::OpenLink { addr, .. } => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(dials, vec![addr("10.0.0.8:7777")]);
}

mod signaling {
    use super::*;
    use crate::envelope::{Envelope, RtcSignal, SignalBody};
    use rand_chacha::ChaCha8Rng;

    fn webrtc_node(seed: u8) -> Node {
        let config = Config { tcp_port: Some(4000), webrtc: true, ..Config::default() };
        Node::new(config, keys(seed), u64::from(seed), t(0))
    }

    fn offer_from(from: &Keypair, to: PeerId, session: u64, at: Instant, rng_seed: u64) -> Envelope {
        let body = SignalBody::Rtc { session, signal: RtcSignal::Offer { sdp: format!("sdp {session}") } };
        Envelope::seal(from, to, at, &body, &mut ChaCha8Rng::seed_from_u64(rng_seed)).unwrap()
    }

    fn opened(outs: &[Output]) -> usize {
        outs.iter().filter(|o| matches!(o, Output::OpenRtc { offer: Some(_), .. })).count()
    }

    #[test]
    fn a_flood_of_fresh_envelopes_cannot_push_one_out_to_replay_it() {
        let config = Config { tcp_port: Some(4000), webrtc: true, seen_cache: 3, ..Config::default() };
        let mut n = Node::new(config, keys(1), 1, t(0));
        let first = offer_from(&keys(2), n.peer_id(), 1, t(0), 1);
        n.handle(t(10), Input::Signal { data: first.encode() });
        for session in 2..=6 {
            let flood = offer_from(&keys(3), n.peer_id(), session, t(0), session);
            n.handle(t(10), Input::Signal { data: flood.encode() });
        }
        drain(&mut n);
        assert_eq!(n.stats().envelope_cache_full, 3, "refused, not let in by forgetting older ones");
        n.handle(t(20), Input::Signal { data: first.encode() });
        assert_eq!(opened(&drain(&mut n)), 0, "the replay is still recognised");
        assert_eq!(n.stats().duplicate_messages, 1);
        // Once the clock window has closed, the cache has room again (and the old envelope
        // could not be accepted any more anyway).
        let later = t(0) + crate::envelope::CLOCK_WINDOW + Duration::from_millis(1);
        let fresh = offer_from(&keys(3), n.peer_id(), 9, later, 9);
        n.handle(later, Input::Signal { data: fresh.encode() });
        assert_eq!(opened(&drain(&mut n)), 1);
    }

    #[test]
    fn an_offer_opens_an_answering_link_once_even_if_it_comes_twice() {
        let mut n = webrtc_node(1);
        let env = offer_from(&keys(2), n.peer_id(), 5, t(0), 1);
        n.handle(t(10), Input::Signal { data: env.encode() });
        let outs = drain(&mut n);
        assert!(outs.iter().any(|o| matches!(o, Output::OpenRtc { peer, offer: Some(sdp), .. }
            if *peer == keys(2).peer_id() && sdp == "sdp 5")));
        // The same envelope over a second channel (or replayed) does nothing.
        n.handle(t(20), Input::Signal { data: env.encode() });
        assert_eq!(opened(&drain(&mut n)), 0);
        assert_eq!(n.stats().duplicate_messages, 1);
    }

    #[test]
    fn forged_stale_and_foreign_envelopes_are_not_obeyed() {
        let mut n = webrtc_node(1);
        let me = n.peer_id();
        // Signed by 3, claiming to be from 2.
        let mut forged = offer_from(&keys(3), me, 1, t(0), 2);
        forged.from = keys(2).peer_id();
        n.handle(t(0), Input::Signal { data: forged.encode() });
        // Three minutes old.
        let stale = offer_from(&keys(2), me, 2, t(0), 3);
        n.handle(t(180_000), Input::Signal { data: stale.encode() });
        n.handle(t(180_000), Input::Signal { data: vec![0xff; 300] });
        assert_eq!(opened(&drain(&mut n)), 0);
        assert_eq!(n.stats().bad_envelopes, 3);
        // Addressed to 4 and arriving on a link: routed on, never opened here.
        let mut n = webrtc_node(1);
        let link = link_up(&mut n, &keys(2), t(0));
        drain(&mut n);
        let other = offer_from(&keys(2), keys(4).peer_id(), 3, t(0), 4);
        n.handle(t(1), Input::Frame { link, data: wire::encode(&Message::Signal { envelope: other, hops: 3 }) });
        let outs = drain(&mut n);
        assert_eq!(opened(&outs), 0);
        assert!(
            !outs.iter().any(|o| matches!(o, Output::SendFrame { link: l, .. } if *l == link)),
            "not back to its sender"
        );
    }

    #[test]
    fn an_offer_flood_is_refused_politely_past_the_pending_cap() {
        let mut n = webrtc_node(1);
        let me = n.peer_id();
        let spammer = keys(9);
        n.handle(t(0), Input::SignalPeer { peer: spammer.peer_id(), online: true });
        drain(&mut n);
        for session in 0..100u64 {
            let env = offer_from(&spammer, me, session, t(0), session + 10);
            n.handle(t(1), Input::Signal { data: env.encode() });
        }
        let outs = drain(&mut n);
        assert_eq!(opened(&outs), 16, "at most 16 attempts at once");
        let refusals = outs.iter().filter(|o| matches!(o, Output::SendSignal { .. })).count();
        assert_eq!(refusals, 84, "every other offer gets a hangup envelope");
        // Attempts the driver never completes are given up, freeing the slots.
        n.handle_timeout(t(31_000));
        let outs = drain(&mut n);
        assert_eq!(outs.iter().filter(|o| matches!(o, Output::CloseLink { .. })).count(), 16);
    }

    #[test]
    fn a_native_node_offers_only_to_peers_without_tcp() {
        let mut n = webrtc_node(1);
        n.handle(t(0), Input::SignalPeer { peer: keys(2).peer_id(), online: true });
        n.handle_timeout(t(5_000));
        assert!(
            !drain(&mut n).iter().any(|o| matches!(o, Output::OpenRtc { .. })),
            "unknown capabilities: wait for its offer"
        );
        // A neighbour says peer 3 is a browser (WebRTC, no TCP).
        let link = link_up(&mut n, &keys(4), t(5_000));
        let list = Message::PeerExchange {
            peers: vec![wire::PeerInfo {
                peer_id: keys(3).peer_id(),
                name: "page".into(),
                addrs: vec![],
                capabilities: Capabilities(Capabilities::WEBRTC),
            }],
        };
        n.handle(t(5_001), Input::Frame { link, data: wire::encode(&list) });
        n.handle_timeout(t(8_000));
        let outs = drain(&mut n);
        let rtc = outs.iter().find_map(|o| match o {
            Output::OpenRtc { link, peer, offer: None } if *peer == keys(3).peer_id() => Some(*link),
            _ => None,
        });
        let rtc = rtc.expect("an offer to the browser");
        // With no signaling channel to 3, the offer goes through the mesh (a mesh this small is
        // flooded at once rather than asked for 3's record).
        n.handle(t(8_001), Input::RtcLocal { link: rtc, signal: RtcSignal::Offer { sdp: "o".into() } });
        let outs = drain(&mut n);
        let signal = outs.iter().find_map(|o| match o {
            Output::SendFrame { link: l, data } if *l == link => wire::decode(data).ok(),
            _ => None,
        });
        assert!(
            matches!(signal, Some(wire::Decoded::Message(Message::Signal { envelope, .. })) if envelope.to == keys(3).peer_id())
        );
    }

    #[test]
    fn a_peer_that_leaves_signaling_is_probed_and_dropped_if_silent() {
        let mut n = webrtc_node(1);
        let (quiet, alive) = (keys(2), keys(3));
        for k in [&quiet, &alive] {
            n.handle(t(0), Input::SignalPeer { peer: k.peer_id(), online: true });
        }
        let quiet_link = neighbor_up(&mut n, &quiet, t(0));
        let alive_link = neighbor_up(&mut n, &alive, t(0));
        drain(&mut n);
        for k in [&quiet, &alive] {
            n.handle(t(1_000), Input::SignalPeer { peer: k.peer_id(), online: false });
        }
        let outs = drain(&mut n);
        let pinged = |l: LinkId| outs.iter().any(|o| matches!(o, Output::SendFrame { link, .. } if *link == l));
        assert!(pinged(quiet_link) && pinged(alive_link), "both are asked at once");
        n.handle(t(1_500), Input::Frame { link: alive_link, data: wire::encode(&Message::Pong { nonce: 0 }) });
        n.handle_timeout(t(7_000));
        let outs = drain(&mut n);
        assert!(closed(&outs, quiet_link), "silent for 5 s after its signaling dropped: closed");
        assert!(!closed(&outs, alive_link), "it answered: kept");
        assert_eq!(n.peers().len(), 1);
    }
}

mod connect;
mod overlay;

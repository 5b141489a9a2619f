//! Names in the DHT (simulated): a bootstrap server's answer, mirrored by the node that got it,
//! resolves at any other node while the server is out of reach, and only the trusted server's
//! word is taken.

mod common;

use common::{connected, overlay_lan, seed};
use core::time::Duration;
use node_core::identity::Keypair;
use node_core::names::{Name, NameAnswer, NameRecord};
use node_core::overlay::record::RecordError;
use node_core::sim::{NodeIdx, Sim};
use node_core::{Command, CommandError, CommandId, Event, PeerId};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// `server`'s answer for `name`, held by `owner` and pointing at `value`, vouched for `days`.
fn answer(sim: &Sim, server: &Keypair, owner: &Keypair, name: &str, value: &str, days: u64) -> NameAnswer {
    let now_ms = sim.now().unix_ms();
    let record = NameRecord {
        name: Name::parse(name).unwrap(),
        value: value.as_bytes().to_vec(),
        owner: owner.peer_id(),
        seq: now_ms,
        unix_ms: now_ms,
        delete: false,
    };
    NameAnswer::new(record.sign(owner), now_ms + days * DAY_MS, server)
}

fn mirror(sim: &mut Sim, at: NodeIdx, answer: &NameAnswer) -> Result<CommandId, CommandError> {
    sim.command(at, Command::MirrorName { answer: Box::new(answer.clone()) })
}

/// Asks node `at` for `name` under `server`, runs the mesh until the lookup ends, and returns
/// what it found.
fn lookup(sim: &mut Sim, at: NodeIdx, server: PeerId, name: &str) -> Option<NameAnswer> {
    let name = Name::parse(name).unwrap();
    let command = sim.command(at, Command::LookupName { server, name: name.clone() }).unwrap();
    let resolved = |sim: &Sim| {
        sim.node(at).events.iter().find_map(|(_, e)| match e {
            Event::NameResolved { command: c, server: s, name: n, answer } if *c == command => {
                assert_eq!((s, n), (&server, &name), "the event names what was asked");
                Some(answer.clone())
            }
            _ => None,
        })
    };
    assert!(
        sim.run_while_not(Duration::from_secs(30), Duration::from_millis(200), |s| resolved(s).is_some()),
        "node {at}: the lookup of {name} ends"
    );
    resolved(sim).flatten().map(|a| *a)
}

#[test]
fn a_mirrored_name_resolves_anywhere_after_the_node_that_mirrored_it_is_gone() {
    let mut sim = overlay_lan(40, 6, seed(71));
    assert!(sim.run_while_not(Duration::from_secs(60), Duration::from_secs(1), connected));
    sim.run_for(Duration::from_secs(30));
    let (server, other_server, owner) =
        (Keypair::from_secret([201; 32]), Keypair::from_secret([202; 32]), Keypair::from_secret([203; 32]));
    let alice = answer(&sim, &server, &owner, "alice", "first", 7);
    mirror(&mut sim, 0, &alice).unwrap();
    sim.run_for(Duration::from_secs(20));
    // The node that got the answer leaves: the peers closest to the name's key hold it.
    sim.kill(0);
    sim.run_for(Duration::from_secs(10));
    for at in [11, 23, 35] {
        assert_eq!(lookup(&mut sim, at, server.peer_id(), "alice"), Some(alice.clone()), "node {at}");
    }
    // Nobody's answer for a name nobody mirrored; and another server's word is not taken for
    // the trusted one's (its records live at other keys).
    assert_eq!(lookup(&mut sim, 12, server.peer_id(), "bob"), None);
    assert_eq!(lookup(&mut sim, 13, other_server.peer_id(), "alice"), None);

    // The owner points the name elsewhere, and the server, its address's quota filling up,
    // vouches for the new answer less long: still, the newer answer replaces the older one
    // wherever it is stored.
    let bumped = answer(&sim, &server, &owner, "alice", "second", 3);
    mirror(&mut sim, 5, &bumped).unwrap();
    sim.run_for(Duration::from_secs(20));
    for at in [17, 29] {
        assert_eq!(lookup(&mut sim, at, server.peer_id(), "alice"), Some(bumped.clone()), "node {at}");
    }
    // A node that mirrored the older answer and is handed it again keeps the newer one.
    mirror(&mut sim, 5, &alice).unwrap();
    assert_eq!(lookup(&mut sim, 5, server.peer_id(), "alice"), Some(bumped.clone()));
}

#[test]
fn answers_that_do_not_check_out_are_refused_with_a_reason() {
    // One node alone: what it holds is all there is.
    let mut sim = overlay_lan(1, 6, seed(72));
    let (server, owner) = (Keypair::from_secret([201; 32]), Keypair::from_secret([203; 32]));
    let good = answer(&sim, &server, &owner, "alice", "v", 7);
    // Signed by the server for another expiry than it shows.
    let stretched = NameAnswer { expires_unix_ms: good.expires_unix_ms + DAY_MS, ..good.clone() };
    assert_eq!(mirror(&mut sim, 0, &stretched), Err(CommandError::Unmirrorable(RecordError::BadSignature)));
    // Vouched for until a moment ago.
    let expired = answer(&sim, &server, &owner, "alice", "v", 0);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(mirror(&mut sim, 0, &expired), Err(CommandError::AnswerOutOfTime));
    // Vouched for further ahead than any server's lease: a clock far off, refused.
    let too_far = answer(&sim, &server, &owner, "alice", "v", 9);
    assert_eq!(mirror(&mut sim, 0, &too_far), Err(CommandError::AnswerOutOfTime));
    // Mirroring the same answer twice is no error, and it is answered from here at once.
    mirror(&mut sim, 0, &good).unwrap();
    mirror(&mut sim, 0, &good).unwrap();
    assert_eq!(lookup(&mut sim, 0, server.peer_id(), "alice"), Some(good));
    // The server says nobody holds the name any more: the node forgets its copy (and stops
    // storing it again; what other peers stored expires when the server said it would).
    sim.command(0, Command::ForgetName { server: server.peer_id(), name: Name::parse("alice").unwrap() }).unwrap();
    assert_eq!(lookup(&mut sim, 0, server.peer_id(), "alice"), None);
}

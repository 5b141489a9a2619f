//! Envelopes in the node: sealing ours, opening those addressed to us, and routing the others —
//! over a link to the recipient, else a driver channel that reaches it, else the mesh (flooded with
//! a hop limit and deduplicated, like direct messages).

use super::Node;
use crate::bounded::Inserted;
use crate::envelope::{Envelope, SignalBody, CLOCK_WINDOW};
use crate::identity::PeerId;
use crate::interface::{LinkId, Output};
use crate::time::Instant;
use crate::wire::Message;
use rand_core::RngCore;

impl Node {
    /// Seals `body` to `to` and sends it the best way there is.
    pub(super) fn send_envelope(&mut self, to: PeerId, body: &SignalBody) {
        let now = self.now;
        match Envelope::seal(&self.keys, to, now, body, &mut self.rng) {
            Ok(env) => {
                let expires = Instant::from_unix_ms(env.unix_ms) + CLOCK_WINDOW;
                // Full of live entries: our own copy coming back is dropped by its signature
                // check's clock window in the end, or answered twice at worst.
                let _ = self.seen_envelopes.insert(now, (env.from, env.nonce), expires);
                let hops = self.config.max_hops;
                self.route_envelope(env, hops, None);
            }
            // Only an oversized description or an unusable recipient key gets here; the link
            // attempt then times out like any unanswered one.
            Err(_) => self.stats.unsendable_envelopes += 1,
        }
    }

    /// Sends an envelope on towards its recipient.
    fn route_envelope(&mut self, envelope: Envelope, hops: u8, arrived_on: Option<LinkId>) {
        let to = envelope.to;
        if self.peers.link_of(&to).is_some() {
            let now = self.now;
            if !self.send_over_link(now, to, Message::Signal { envelope, hops }) {
                self.stats.overlay_dropped += 1; // too many peers have messages waiting
            }
            return;
        }
        let on_channel = self.peers.get(&to).is_some_and(|p| p.signal);
        // A broker carries only what we signed ourselves (nobody can use us to publish to it),
        // and it has no presence: the mesh may reach the peer too, so the flood still goes.
        if on_channel || (self.broker && envelope.from == self.me) {
            self.outputs.push_back(Output::SendSignal { to, data: envelope.encode() });
        }
        if on_channel || hops == 0 || !self.has_room() {
            return;
        }
        // Our own envelope may wait for a lookup of the recipient's record; one we pass on
        // follows a record we already have, or floods.
        let reach = if envelope.from == self.me {
            super::dht::Reach::Dial { avoid: None }
        } else {
            super::dht::Reach::Links { from: arrived_on.and_then(|l| self.links.get(&l)).and_then(|l| l.peer()) }
        };
        let msg = Message::Signal { envelope, hops: hops - 1 };
        if self.route_by_record(self.now, to, msg.clone(), reach) {
            return;
        }
        self.stats.flooded_messages += 1;
        self.flood(&msg, arrived_on);
    }

    /// Whether a driver channel reaches `peer` with our own envelopes: a broker reaches
    /// everyone, a server or our `/v1/signal` those online there.
    pub(super) fn can_signal(&self, peer: &PeerId) -> bool {
        self.broker || self.peers.get(peer).is_some_and(|p| p.signal)
    }

    /// An envelope from a driver channel (a server websocket, a browser on our `/v1/signal`).
    pub(super) fn handle_signal_input(&mut self, now: Instant, data: &[u8]) {
        match Envelope::decode(data) {
            Ok(env) => {
                let hops = self.config.max_hops;
                self.accept_envelope(now, env, hops, None)
            }
            Err(_) => self.stats.bad_envelopes += 1,
        }
    }

    /// An envelope that came over a link.
    pub(super) fn handle_signal_message(&mut self, now: Instant, link: LinkId, envelope: Envelope, hops: u8) {
        self.accept_envelope(now, envelope, hops, Some(link));
    }

    /// Verifies an envelope before anything else (a forged one must not even take a slot in the
    /// duplicate cache), then opens it if it is ours or routes it on.
    fn accept_envelope(&mut self, now: Instant, envelope: Envelope, hops: u8, arrived_on: Option<LinkId>) {
        if envelope.verify(now).is_err() {
            self.stats.bad_envelopes += 1;
            return;
        }
        // Remembered until the envelope's clock window closes, after which `verify` refuses it
        // anyway: no replay gets in, however many envelopes arrive meanwhile.
        let expires = Instant::from_unix_ms(envelope.unix_ms) + CLOCK_WINDOW;
        match self.seen_envelopes.insert(now, (envelope.from, envelope.nonce), expires) {
            Inserted::New => {}
            Inserted::Present => {
                self.stats.duplicate_messages += 1;
                return;
            }
            Inserted::Full => {
                self.stats.envelope_cache_full += 1;
                return;
            }
        }
        // A hop count above ours would let one envelope travel further than we allow.
        let hops = hops.min(self.config.max_hops);
        if envelope.to != self.me {
            return self.route_envelope(envelope, hops, arrived_on);
        }
        match envelope.open(&self.keys, now) {
            Ok(body) => self.handle_signal_body(now, envelope.from, body),
            Err(_) => self.stats.bad_envelopes += 1,
        }
    }

    fn handle_signal_body(&mut self, now: Instant, from: PeerId, body: SignalBody) {
        match body {
            SignalBody::Rtc { session, signal } => self.handle_rtc_signal(now, from, session, signal),
            SignalBody::Connect { session, step } => self.handle_connect_signal(now, from, session, step),
        }
    }

    /// A driver channel now reaches `peer`, or no longer does.
    pub(super) fn handle_signal_peer(&mut self, now: Instant, peer: PeerId, online: bool) {
        if peer == self.me {
            return;
        }
        if online {
            let new = self.peers.observe(peer, "", None, super::peers::Source::Discovery, now);
            let delay = self.rtc_dial_delay(&peer);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.signal = true;
                if new {
                    p.next_dial = now + delay;
                }
            }
            self.overlay_learn(now, peer);
            self.dial_candidates(now);
            self.connect_channel_opened(now, Some(peer));
        } else if let Some(p) = self.peers.get_mut(&peer) {
            p.signal = false;
            // A peer that left the signaling server may have closed its tab: ask it right away
            // rather than wait out the full liveness timeout (a live peer simply answers).
            if let Some(link) = p.link {
                self.probe(now, link);
            }
        }
    }

    fn probe(&mut self, now: Instant, link: LinkId) {
        let nonce = self.rng.next_u64();
        let Some(l) = self.links.get_mut(&link) else { return };
        l.probe = Some(now);
        l.ping = Some((nonce, now));
        l.last_ping = now;
        self.send(link, &Message::Ping { nonce });
    }
}

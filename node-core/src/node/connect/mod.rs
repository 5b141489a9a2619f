//! Linking two nodes across networks ([`Command::ConnectPeer`]): the initiator sends its side
//! (`Hello`: listen addresses, NAT report, relay), the responder answers with its own
//! (`Welcome`), and the initiator works down the plan ([`crate::nat::plan`]), one strategy at a
//! time, each within its timeout, asking the responder (`Try`) to do its part where it has one.
//! The first link with the peer, of any kind, ends the attempt; both ends then report every step
//! ([`Event::Connectivity`]).
//!
//! Strategies either end's driver cannot carry out ([`crate::Config::punch`]) are reported as
//! skipped with that reason, never silently dropped.

mod punch;

use super::Node;
use crate::envelope::{ConnectSignal, SignalBody};
use crate::identity::PeerId;
use crate::interface::{CommandError, Event, LinkId, Output, PunchProto};
use crate::nat::plan::{self, EndpointInfo, Planned, Strategy, MAX_ADDRS};
use crate::nat::report::{ConnectReport, Role, StepReport, StepResult};
use crate::nat::NatType;
use crate::time::Instant;
use core::time::Duration;
use rand_core::RngCore;
use std::net::{IpAddr, SocketAddr};

/// Attempts in progress at once (ours and the peers'): each may hold a relay session and dials.
pub(super) const MAX_CONNECTS: usize = 16;
/// Reports kept for [`Node::diagnose`] (the oldest goes first).
const MAX_REPORTS: usize = 64;
/// How long the initiator waits for the responder's `Welcome` (which may wait [`NAT_WAIT`]
/// for the responder's own NAT report).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an attempt waits for a signaling route to the peer (it may not be logged in yet).
const ROUTE_WAIT: Duration = Duration::from_secs(30);
/// How long an attempt waits for our own NAT report before describing us without it.
const NAT_WAIT: Duration = Duration::from_secs(8);
/// Longest reason text taken from a peer.
const MAX_REASON: usize = 200;
/// The responder starts punching this long after its reply, so both ends start together.
const PUNCH_LEAD: Duration = Duration::from_millis(300);

/// One attempt, on either end.
#[derive(Debug)]
pub(super) struct Attempt {
    session: u64,
    role: Role,
    started: Instant,
    /// The peer's side, once known.
    remote: Option<EndpointInfo>,
    /// What is left to try (initiator only), front first.
    plan: Vec<Planned>,
    /// The strategy being tried, since when, and the links opened for it.
    current: Option<(Strategy, Instant, Vec<LinkId>)>,
    /// When the current wait (for `Welcome`, for a step, for the responder's part) ends.
    deadline: Instant,
    /// Whether our `Hello` (initiator) or `Welcome` (responder) went out: each waits for a
    /// route to the peer and for our NAT report, so both plans are made from real reports.
    greeted: bool,
    /// Whether it went out on a signaling channel that reaches the peer (rather than only
    /// into the mesh, which may not): when such a channel appears later, it goes again.
    greeted_on_channel: bool,
    /// Responder: the initiator's punch address, until our own socket is ready.
    punch_remote: Option<(PunchProto, SocketAddr)>,
    steps: Vec<StepReport>,
}

impl Attempt {
    fn new(session: u64, role: Role, now: Instant, deadline: Instant) -> Self {
        Attempt {
            session,
            role,
            started: now,
            remote: None,
            plan: Vec::new(),
            current: None,
            deadline,
            greeted: false,
            greeted_on_channel: false,
            punch_remote: None,
            steps: Vec::new(),
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn clip(reason: &str) -> String {
    reason.chars().take(MAX_REASON).collect()
}

impl Node {
    /// This node's side of an attempt.
    fn endpoint_info(&self) -> EndpointInfo {
        EndpointInfo {
            addrs: self.config.listen_addrs.iter().take(MAX_ADDRS).copied().collect(),
            nat: self.nat.clone(),
            relay: self.config.relay,
            punch: self.config.punch,
            mapped: self.port_mapping.flatten().filter(|m| is_public(m.ip())),
        }
    }

    /// [`Command::ConnectPeer`].
    pub(super) fn connect_peer(&mut self, now: Instant, peer: PeerId) -> Result<(), CommandError> {
        if peer == self.me {
            return Err(CommandError::SelfTarget);
        }
        if self.peers.link_of(&peer).is_some() || self.connects.contains_key(&peer) {
            return Ok(()); // linked already, or on its way
        }
        if self.config.tcp_port.is_none() {
            return self.connect_peer_over_rtc(now, peer);
        }
        if self.connects.len() >= MAX_CONNECTS {
            return Err(CommandError::Busy("too many link attempts in progress"));
        }
        let session = self.rng.next_u64();
        self.connects.insert(peer, Attempt::new(session, Role::Initiator, now, now + NAT_WAIT.min(ROUTE_WAIT)));
        self.connect_send_hellos(now);
        Ok(())
    }

    /// A node that links over WebRTC only (a browser) has no ladder to climb: it offers a data
    /// channel through whichever signaling channel reaches the peer (a broker reaches anyone).
    fn connect_peer_over_rtc(&mut self, now: Instant, peer: PeerId) -> Result<(), CommandError> {
        if !self.config.webrtc {
            return Err(CommandError::NotConnected(format!("{} (this node opens no links of its own)", peer.short())));
        }
        if !self.can_signal(&peer) {
            return Err(CommandError::NotConnected(format!("{} (no signaling channel reaches it)", peer.short())));
        }
        if self.links.values().any(|l| l.expect == Some(peer)) {
            return Ok(()); // on its way
        }
        self.peers.observe(peer, "", None, super::peers::Source::Manual, now);
        self.open_rtc_link(now, peer);
        Ok(())
    }

    /// Sends the `Hello` or `Welcome` of every attempt that was waiting and now can go: the peer is reachable
    /// (a signaling channel or a link to route over) and our NAT report is in (or we waited
    /// long enough for it). Called when either changes, and on the attempt's timer.
    pub(super) fn connect_send_hellos(&mut self, now: Instant) {
        let have_nat = (self.nat.is_some() || !self.config.nat_probe)
            && (self.port_mapping.is_some() || !self.config.port_mapping);
        let ready: Vec<PeerId> = self
            .connects
            .iter()
            .filter(|(_, a)| !a.greeted && (have_nat || now - a.started >= NAT_WAIT))
            .map(|(p, _)| *p)
            .filter(|p| self.can_signal(p) || self.peers.iter().any(|(_, k)| k.link.is_some()))
            .collect();
        let info = self.endpoint_info();
        let whole: Duration = Strategy::LADDER.iter().map(|s| s.timeout()).sum();
        for peer in ready {
            let on_channel = self.can_signal(&peer);
            let Some(a) = self.connects.get_mut(&peer) else { continue };
            a.greeted = true;
            a.greeted_on_channel = on_channel;
            let info = info.clone();
            let step = match a.role {
                Role::Initiator => {
                    a.deadline = now + WELCOME_TIMEOUT;
                    ConnectSignal::Hello { info }
                }
                Role::Responder => {
                    // From here the initiator leads; this only ends an attempt it abandoned.
                    a.deadline = now + WELCOME_TIMEOUT + whole;
                    ConnectSignal::Welcome { info }
                }
            };
            let session = a.session;
            self.send_envelope(peer, &SignalBody::Connect { session, step });
        }
    }

    /// A signaling channel now reaches `peer` (`None`: everyone, a broker came up): a `Hello`
    /// or `Welcome` that could only go into the mesh (which need not reach the peer) goes again
    /// on it, in the same session, so the peer answers whichever copy arrives first, once.
    pub(super) fn connect_channel_opened(&mut self, now: Instant, peer: Option<PeerId>) {
        for (p, a) in self.connects.iter_mut() {
            // Nothing came back yet: no Welcome (initiator), no Try (responder).
            let unanswered = a.current.is_none() && (a.role == Role::Responder || a.remote.is_none());
            if peer.is_none_or(|peer| peer == *p) && a.greeted && !a.greeted_on_channel && unanswered {
                a.greeted = false;
            }
        }
        self.connect_send_hellos(now);
    }

    /// A `Connect` envelope from `from`.
    pub(super) fn handle_connect_signal(&mut self, now: Instant, from: PeerId, session: u64, step: ConnectSignal) {
        match step {
            ConnectSignal::Hello { info } => self.connect_hello(now, from, session, info),
            ConnectSignal::Welcome { info } => {
                let mine = self.endpoint_info();
                let Some(a) = self.connects.get_mut(&from) else { return };
                if a.session != session || a.role != Role::Initiator || a.remote.is_some() {
                    return;
                }
                let info = sanitize(info);
                a.plan = plan::plan(&mine, &info);
                a.remote = Some(info);
                self.connect_advance(now, from);
            }
            ConnectSignal::Try { strategy } => {
                let Some(a) = self.connects.get_mut(&from) else { return };
                // Each strategy once, in ladder order: a peer (or a replay) cannot make us dial
                // or open relays over and over.
                let after_last = a.steps.last().map(|s| s.strategy).max(a.current.as_ref().map(|c| c.0));
                if a.session != session || a.role != Role::Responder || after_last.is_some_and(|l| strategy <= l) {
                    return;
                }
                // The initiator moved on: whatever the previous step left open is dropped, and
                // a punch of the new step gets its own addresses.
                a.punch_remote = None;
                if let Some((s, since, links)) = a.current.take() {
                    a.steps.push(StepReport { strategy: s, result: StepResult::TimedOut, took_ms: ms(now - since) });
                    for l in links {
                        self.close_link(l, "the peer moved on to another strategy", None);
                    }
                }
                self.connect_respond(now, from, strategy);
            }
            ConnectSignal::Punch { proto, addr } => {
                let Some(a) = self.connects.get_mut(&from) else { return };
                let expected = a.remote.as_ref().and_then(|r| r.nat.as_ref()).and_then(|n| n.public).map(|p| p.ip());
                let fits = a.session == session && a.role == Role::Responder && a.punch_remote.is_none();
                if !fits || expected != Some(addr.ip()) || !is_public(addr.ip()) {
                    // Only ever towards the public address the peer described: we must not be
                    // talked into sending packets at anyone else.
                    return;
                }
                a.punch_remote = Some((proto, addr));
                let link = self.open_punch(now, from, proto);
                if let Some(a) = self.connects.get_mut(&from) {
                    match &mut a.current {
                        Some((_, _, links)) => links.push(link),
                        None => a.current = Some((punch_strategy(proto), now, vec![link])),
                    }
                }
            }
            ConnectSignal::PunchReply { proto, addr, at_ms } => {
                let Some(a) = self.connects.get_mut(&from) else { return };
                let expected = a.remote.as_ref().and_then(|r| r.nat.as_ref()).and_then(|n| n.public).map(|p| p.ip());
                let link = match &a.current {
                    Some((s, _, links)) if *s == punch_strategy(proto) => links.first().copied(),
                    _ => None,
                };
                let fits = a.session == session && a.role == Role::Initiator && a.punch_remote.is_none();
                let (Some(link), true) = (link, fits && expected == Some(addr.ip()) && is_public(addr.ip())) else {
                    return;
                };
                a.punch_remote = Some((proto, addr)); // once: a repeated reply starts nothing
                                                      // A start time in the past or far ahead is clamped: we start now, or soon.
                let at = Instant::from_unix_ms(at_ms).max(now).min(now + PUNCH_LEAD * 4);
                self.outputs.push_back(Output::Punch { link, peer: from, proto, remote: addr, at });
            }
            ConnectSignal::Abandon { reason } => {
                if self.connects.get(&from).is_some_and(|a| a.session == session) {
                    self.connect_finish(now, from, None, Some(format!("the peer gave up: {}", clip(&reason))));
                }
            }
        }
    }

    fn connect_hello(&mut self, now: Instant, from: PeerId, session: u64, info: EndpointInfo) {
        let refuse = if self.config.tcp_port.is_none() {
            Some("this node links over WebRTC only")
        } else if self.peers.link_of(&from).is_some() {
            Some("already linked")
        } else if self.connects.len() >= MAX_CONNECTS && !self.connects.contains_key(&from) {
            Some("too many link attempts in progress")
        } else {
            None
        };
        if let Some(reason) = refuse {
            let step = ConnectSignal::Abandon { reason: reason.into() };
            return self.send_envelope(from, &SignalBody::Connect { session, step });
        }
        if let Some(mine) = self.connects.get(&from) {
            // Both asked at once: the lower id's attempt goes on, the other end answers it.
            // A copy of the Hello we answer already changes nothing.
            if (mine.role == Role::Initiator && self.me < from) || mine.session == session {
                return;
            }
            // A new attempt replaces the old one, which is ended (and its links closed) first.
            self.connect_finish(now, from, None, Some("the peer started over".into()));
        }
        let mut a = Attempt::new(session, Role::Responder, now, now + NAT_WAIT);
        a.remote = Some(sanitize(info));
        self.connects.insert(from, a);
        self.connect_send_hellos(now);
    }

    /// The responder's part of `strategy`.
    fn connect_respond(&mut self, now: Instant, peer: PeerId, strategy: Strategy) {
        let remote = self.connects.get(&peer).and_then(|a| a.remote.clone()).unwrap_or_default();
        let links = match strategy {
            Strategy::Reverse => {
                public_tcp(&remote).map(|addr| vec![self.open_link(now, addr, Some(peer))]).unwrap_or_default()
            }
            Strategy::Relay if self.config.relay => vec![self.open_relay(now, peer)],
            _ => Vec::new(),
        };
        if let Some(a) = self.connects.get_mut(&peer) {
            a.current = Some((strategy, now, links));
        }
    }

    /// Initiator: starts the next strategy of the plan, or ends the attempt when none is left.
    fn connect_advance(&mut self, now: Instant, peer: PeerId) {
        loop {
            let Some(a) = self.connects.get_mut(&peer) else { return };
            if a.plan.is_empty() {
                let reason = "every strategy failed".to_owned();
                let step = ConnectSignal::Abandon { reason: reason.clone() };
                let session = a.session;
                self.send_envelope(peer, &SignalBody::Connect { session, step });
                return self.connect_finish(now, peer, None, Some(reason));
            }
            let strategy = match a.plan.remove(0) {
                Planned::Skip(s, why) => {
                    a.steps.push(StepReport {
                        strategy: s,
                        result: StepResult::Skipped { reason: why.into() },
                        took_ms: 0,
                    });
                    continue;
                }
                Planned::Try(s) => s,
            };
            let session = a.session;
            let remote = a.remote.clone().unwrap_or_default();
            a.deadline = now + strategy.timeout();
            a.punch_remote = None; // each punch step exchanges its own addresses
            let links: Vec<LinkId> = match strategy {
                Strategy::LanDirect => remote.addrs.iter().map(|addr| self.open_link(now, *addr, Some(peer))).collect(),
                Strategy::PublicDirect => {
                    public_tcp(&remote).map(|addr| self.open_link(now, addr, Some(peer))).into_iter().collect()
                }
                Strategy::Relay => vec![self.open_relay(now, peer)],
                Strategy::TcpSimultaneousOpen => vec![self.open_punch(now, peer, PunchProto::Tcp)],
                Strategy::UdpPunch => vec![self.open_punch(now, peer, PunchProto::Udp)],
                _ => Vec::new(),
            };
            // Every step is announced, so the responder knows what a link that comes up was for.
            self.send_envelope(peer, &SignalBody::Connect { session, step: ConnectSignal::Try { strategy } });
            if let Some(a) = self.connects.get_mut(&peer) {
                a.current = Some((strategy, now, links));
            }
            return;
        }
    }

    /// A link with `peer` is established: an attempt with it, if any, succeeded.
    pub(super) fn connect_linked(&mut self, now: Instant, peer: PeerId, link: LinkId) {
        let Some(a) = self.connects.get_mut(&peer) else { return };
        let strategy = match &a.current {
            Some((s, _, links)) if links.contains(&link) => Some(*s),
            // The other end's dial came in: the initiator's for a responder; the responder's
            // reverse dial for an initiator (a step with no links of our own).
            Some((s, _, links)) if a.role == Role::Responder || links.is_empty() => Some(*s),
            _ => None,
        };
        let Some(strategy) = strategy else {
            // Linked some other way (LAN discovery, the peer's own dial): the attempt is moot.
            return self.connect_finish(now, peer, None, Some("linked by other means".into()));
        };
        let mut others = Vec::new();
        if let Some((_, since, links)) = a.current.take() {
            a.steps.push(StepReport { strategy, result: StepResult::Linked, took_ms: ms(now - since) });
            others = links.into_iter().filter(|l| *l != link).collect();
        }
        // The step's other dials (one per address) are not needed any more.
        for l in others {
            self.close_link(l, "linked another way", None);
        }
        self.connect_finish(now, peer, Some(strategy), None);
    }

    /// A link opened for an attempt went away before it came up.
    pub(super) fn connect_link_failed(&mut self, now: Instant, link: LinkId, reason: &str) {
        let Some((peer, _)) =
            self.connects.iter().find(|(_, a)| a.current.as_ref().is_some_and(|(_, _, links)| links.contains(&link)))
        else {
            return;
        };
        let peer = *peer;
        let Some(a) = self.connects.get_mut(&peer) else { return };
        let Some((strategy, since, links)) = a.current.as_mut() else { return };
        links.retain(|l| *l != link);
        // The responder's dial/relay failing is for the initiator's timer to judge; the
        // initiator moves on as soon as every link of the step is gone.
        if !links.is_empty() || a.role == Role::Responder {
            return;
        }
        let step = StepReport {
            strategy: *strategy,
            result: StepResult::Failed { reason: clip(reason) },
            took_ms: ms(now - *since),
        };
        // Reverse and relay also depend on the responder: wait out the step for its part.
        if matches!(strategy, Strategy::Reverse) {
            return;
        }
        a.steps.push(step);
        a.current = None;
        self.connect_advance(now, peer);
    }

    /// Timers of every attempt.
    pub(super) fn connect_timers(&mut self, now: Instant) {
        let due: Vec<PeerId> = self.connects.iter().filter(|(_, a)| a.deadline <= now).map(|(p, _)| *p).collect();
        for peer in due {
            let Some(a) = self.connects.get_mut(&peer) else { continue };
            match (a.role, a.remote.is_some()) {
                (_, _) if !a.greeted => {
                    if now - a.started >= ROUTE_WAIT {
                        let why = "no signaling route to the peer (is it online on the same bootstrap server?)";
                        self.connect_finish(now, peer, None, Some(why.into()));
                    } else {
                        a.deadline = now + Duration::from_millis(500);
                        self.connect_send_hellos(now);
                    }
                }
                (Role::Initiator, false) => {
                    self.connect_finish(now, peer, None, Some("the peer did not answer over signaling".into()))
                }
                (Role::Initiator, true) => {
                    if let Some((strategy, since, links)) = a.current.take() {
                        a.steps.push(StepReport { strategy, result: StepResult::TimedOut, took_ms: ms(now - since) });
                        for l in links {
                            self.close_link(l, "the strategy timed out", None);
                        }
                    }
                    self.connect_advance(now, peer);
                }
                (Role::Responder, _) => self.connect_finish(now, peer, None, Some("the initiator went quiet".into())),
            }
        }
    }

    /// The earliest attempt deadline.
    pub(super) fn connect_wakeup(&self) -> Option<Instant> {
        self.connects.values().map(|a| a.deadline).min()
    }

    fn connect_finish(&mut self, now: Instant, peer: PeerId, linked: Option<Strategy>, failure: Option<String>) {
        let Some(mut a) = self.connects.remove(&peer) else { return };
        if let Some((strategy, since, links)) = a.current.take() {
            if linked.is_none() {
                a.steps.push(StepReport { strategy, result: StepResult::TimedOut, took_ms: ms(now - since) });
                for l in links {
                    self.close_link(l, "the link attempt ended", None);
                }
            }
        }
        let report = ConnectReport { role: a.role, linked, failure, steps: a.steps, took_ms: ms(now - a.started) };
        if self.reports.len() >= MAX_REPORTS && !self.reports.contains_key(&peer) {
            let oldest = self.reports.iter().min_by_key(|(_, (at, _))| *at).map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.reports.remove(&oldest);
            }
        }
        self.reports.insert(peer, (now, report.clone()));
        self.emit(Event::Connectivity { peer, report });
    }
}

/// Whether `ip` is an address on the public internet: punches and reverse dials only ever go
/// there, so a peer cannot point them at our loopback, our LAN or a multicast group.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b); // carrier-grade NAT space
            !(v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_multicast())
                && !(v4.is_broadcast() || v4.is_unspecified() || shared || a == 0)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || unique_local || link_local)
        }
    }
}

/// The ladder step a punch protocol belongs to.
fn punch_strategy(proto: PunchProto) -> Strategy {
    match proto {
        PunchProto::Tcp => Strategy::TcpSimultaneousOpen,
        PunchProto::Udp => Strategy::UdpPunch,
    }
}

/// A peer's side, cut down to what we are willing to act on.
fn sanitize(mut info: EndpointInfo) -> EndpointInfo {
    info.addrs.truncate(MAX_ADDRS);
    // A mapping on a private address (a router behind another NAT) is no use to us: the plan
    // must not count on it.
    info.mapped = info.mapped.filter(|m| is_public(m.ip()));
    info
}

/// The peer's public TCP address: the port its router mapped for it, or, when it has no NAT,
/// its public IP and its TCP listen port.
fn public_tcp(info: &EndpointInfo) -> Option<SocketAddr> {
    if let Some(mapped) = info.mapped.filter(|m| is_public(m.ip())) {
        return Some(mapped);
    }
    let nat = info.nat.as_ref()?;
    if nat.nat_type != NatType::Open {
        return None;
    }
    let port = info.addrs.first()?.port();
    let ip = nat.public?.ip();
    is_public(ip).then_some(SocketAddr::new(ip, port))
}

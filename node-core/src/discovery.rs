//! LAN discovery: signed announcements, their replay guard, and when to send them.
//!
//! Announcements go out as UDP broadcast and multicast on a pool of ports; the designated port
//! rotates every 30 s by wall-clock time, so every node agrees on it without talking, and a port
//! that something else holds on one LAN costs at most a rotation. A receiver dials the **UDP
//! source address** of an announcement (with the TCP port from the body) and never an address in
//! the body, so a forged or reflected announcement cannot aim our dials at a third host; the
//! Noise handshake then proves the PeerId.

use crate::bounded::BoundedSet;
use crate::identity::{signed_bytes, signing_domain, Keypair, PeerId, Signature};
use crate::time::Instant;
use core::time::Duration;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// Magic prefix of every discovery datagram, so stray traffic on the pool ports is cheap to skip.
pub const MAGIC: &[u8; 5] = b"WEFT1";
/// Largest discovery datagram we send or parse.
pub const MAX_DATAGRAM: usize = 1200;
/// How far an announcement's clock may be from ours (DESIGN: ±2 minutes).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(120);
/// How often the designated broadcast port changes.
pub const PORT_ROTATION: Duration = Duration::from_secs(30);

/// Default pool of discovery ports.
pub const DEFAULT_PORTS: [u16; 5] = [47470, 47471, 47472, 47473, 47474];

/// What a node says about itself on the LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The announcing node.
    pub peer_id: PeerId,
    /// Its display name.
    pub name: String,
    /// Its mesh; receivers in another mesh ignore it.
    pub mesh_id: String,
    /// Its TCP listening port (dialed at the datagram's source IP).
    pub tcp_port: u16,
    /// Its QUIC port, once it has one.
    pub quic_port: Option<u16>,
    /// Its HTTP port (page and browser signaling), once it has one.
    pub http_port: Option<u16>,
    /// The sender's wall clock, for the replay window.
    pub unix_ms: u64,
    /// Random per announcement, for the replay cache.
    pub nonce: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedAnnouncement {
    body: Announcement,
    signature: Signature,
}

/// Why a datagram was not accepted as an announcement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// Not a Weft datagram, or too large.
    #[error("not a weft announcement")]
    NotOurs,
    /// The body does not parse.
    #[error("malformed announcement")]
    Malformed,
    /// A field is over its limit.
    #[error("announcement field over its limit")]
    TooLarge,
    /// The signature does not verify against the announced PeerId.
    #[error("bad signature")]
    BadSignature,
    /// The timestamp is outside the replay window.
    #[error("timestamp outside the replay window")]
    Stale,
    /// This exact announcement was seen before.
    #[error("replayed announcement")]
    Replay,
}

impl Announcement {
    /// Signs and encodes this announcement as a datagram.
    pub fn encode_signed(&self, keys: &Keypair) -> Vec<u8> {
        let body = postcard::to_allocvec(self).unwrap_or_default();
        let signature = keys.sign(&signed_bytes(signing_domain::ANNOUNCE, &body));
        let signed = SignedAnnouncement { body: self.clone(), signature };
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&postcard::to_allocvec(&signed).unwrap_or_default());
        out
    }

    /// Parses a datagram and checks its signature (not freshness: see [`ReplayGuard`]).
    pub fn decode_verified(data: &[u8]) -> Result<Announcement, AnnounceError> {
        if data.len() > MAX_DATAGRAM || !data.starts_with(MAGIC) {
            return Err(AnnounceError::NotOurs);
        }
        let signed: SignedAnnouncement =
            postcard::from_bytes(&data[MAGIC.len()..]).map_err(|_| AnnounceError::Malformed)?;
        let a = signed.body;
        if a.name.len() > crate::wire::MAX_NAME_LEN || a.mesh_id.len() > crate::wire::MAX_MESH_ID_LEN {
            return Err(AnnounceError::TooLarge);
        }
        let body = postcard::to_allocvec(&a).map_err(|_| AnnounceError::Malformed)?;
        if !a.peer_id.verify(&signed_bytes(signing_domain::ANNOUNCE, &body), &signed.signature) {
            return Err(AnnounceError::BadSignature);
        }
        Ok(a)
    }
}

/// Drops announcements outside the clock window and exact repeats inside it.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: BoundedSet<(PeerId, u64)>,
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` recent announcements.
    pub fn new(capacity: usize) -> Self {
        ReplayGuard { seen: BoundedSet::new(capacity) }
    }

    /// Accepts `a` once, if its clock is within the window of `now`.
    pub fn check(&mut self, a: &Announcement, now: Instant) -> Result<(), AnnounceError> {
        let window = REPLAY_WINDOW.as_millis() as u64;
        if a.unix_ms.abs_diff(now.unix_ms()) > window {
            return Err(AnnounceError::Stale);
        }
        if !self.seen.insert((a.peer_id, a.nonce)) {
            return Err(AnnounceError::Replay);
        }
        Ok(())
    }
}

/// The designated broadcast port at `now`: the same on every node with a sane clock.
pub fn designated_port(ports: &[u16], now: Instant) -> Option<u16> {
    if ports.is_empty() {
        return None;
    }
    let slot = now.unix_ms() / PORT_ROTATION.as_millis() as u64;
    Some(ports[(slot % ports.len() as u64) as usize])
}

/// When to announce: a burst at start, then a sine-modulated interval between 1 s and 20 s with
/// jitter, held at the slow end once the node has enough peers.
///
/// The modulation spreads a crowd of nodes that started together (a power cut, a classroom) over
/// time instead of letting them announce in lockstep, while a node that just started still hears
/// back quickly.
#[derive(Debug, Clone)]
pub struct AnnounceSchedule {
    start: Instant,
    burst: &'static [Duration],
    burst_sent: usize,
}

/// Offsets of the start burst.
const BURST: [Duration; 3] = [Duration::from_millis(0), Duration::from_millis(100), Duration::from_millis(300)];
/// Shortest steady interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest steady interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(20);
/// Period of the sine modulation.
const MODULATION_PERIOD: f64 = 120.0;

impl AnnounceSchedule {
    /// A schedule whose burst starts at `now`.
    pub fn new(now: Instant) -> Self {
        AnnounceSchedule { start: now, burst: &BURST, burst_sent: 0 }
    }

    /// Starts a new burst (the user asked to discover now).
    pub fn restart(&mut self, now: Instant) {
        self.start = now;
        self.burst_sent = 0;
    }

    /// When the announcement after one sent at `now` is due.
    pub fn next_after(&mut self, now: Instant, enough_peers: bool, rng: &mut impl RngCore) -> Instant {
        self.burst_sent += 1;
        if let Some(offset) = self.burst.get(self.burst_sent) {
            return (self.start + *offset).max(now);
        }
        now + steady_interval(now - self.start, enough_peers, rng)
    }

    /// When the first announcement is due.
    pub fn first(&self) -> Instant {
        self.start
    }
}

/// The steady-state interval `elapsed` after start.
fn steady_interval(elapsed: Duration, enough_peers: bool, rng: &mut impl RngCore) -> Duration {
    let (min, max) = (MIN_INTERVAL.as_secs_f64(), MAX_INTERVAL.as_secs_f64());
    let base = if enough_peers {
        max
    } else {
        let phase = elapsed.as_secs_f64() / MODULATION_PERIOD * core::f64::consts::TAU;
        min + (max - min) * (1.0 - phase.cos()) / 2.0
    };
    // ±20 % jitter from the node's seeded RNG.
    let jitter = 0.8 + 0.4 * (rng.next_u32() as f64 / u32::MAX as f64);
    Duration::from_secs_f64((base * jitter).clamp(min * 0.8, max * 1.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn sample(keys: &Keypair, unix_ms: u64, nonce: u64) -> Announcement {
        Announcement {
            peer_id: keys.peer_id(),
            name: "a".into(),
            mesh_id: "m".into(),
            tcp_port: 1000,
            quic_port: None,
            http_port: Some(8080),
            unix_ms,
            nonce,
        }
    }

    #[test]
    fn signed_announcements_verify_and_tampering_is_caught() {
        let keys = Keypair::generate(&mut ChaCha8Rng::seed_from_u64(1));
        let a = sample(&keys, 1_000, 7);
        let mut bytes = a.encode_signed(&keys);
        assert_eq!(Announcement::decode_verified(&bytes), Ok(a));
        let last = bytes.len() - 70; // inside the body, before the signature
        bytes[last] ^= 1;
        assert!(matches!(
            Announcement::decode_verified(&bytes),
            Err(AnnounceError::BadSignature | AnnounceError::Malformed)
        ));
        assert_eq!(Announcement::decode_verified(b"hello"), Err(AnnounceError::NotOurs));
    }

    #[test]
    fn replay_guard_drops_repeats_and_stale_clocks() {
        let keys = Keypair::generate(&mut ChaCha8Rng::seed_from_u64(2));
        let mut g = ReplayGuard::new(16);
        let now = Instant::from_unix_ms(1_000_000);
        assert_eq!(g.check(&sample(&keys, 1_000_000, 1), now), Ok(()));
        assert_eq!(g.check(&sample(&keys, 1_000_000, 1), now), Err(AnnounceError::Replay));
        assert_eq!(g.check(&sample(&keys, 1_000_000 - 121_000, 2), now), Err(AnnounceError::Stale));
        assert_eq!(g.check(&sample(&keys, 1_000_000 + 121_000, 3), now), Err(AnnounceError::Stale));
        assert_eq!(g.check(&sample(&keys, 1_000_000 + 119_000, 4), now), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1300), magic in proptest::prelude::any::<bool>()) {
            let mut data = if magic { MAGIC.to_vec() } else { Vec::new() };
            data.extend_from_slice(&body);
            proptest::prop_assert!(Announcement::decode_verified(&data).is_err() || data.starts_with(MAGIC));
        }

        #[test]
        fn announcements_round_trip(name in "[a-z]{0,20}", mesh in "[a-z]{0,20}", port in 1u16.., unix_ms in proptest::prelude::any::<u64>(), nonce in proptest::prelude::any::<u64>()) {
            let keys = Keypair::from_secret([5; 32]);
            let a = Announcement { peer_id: keys.peer_id(), name, mesh_id: mesh, tcp_port: port, quic_port: None, http_port: None, unix_ms, nonce };
            proptest::prop_assert_eq!(Announcement::decode_verified(&a.encode_signed(&keys)), Ok(a));
        }
    }

    #[test]
    fn designated_port_rotates_every_30_seconds() {
        let ports = DEFAULT_PORTS;
        let t0 = Instant::from_unix_ms(0);
        assert_eq!(designated_port(&ports, t0), Some(47470));
        assert_eq!(designated_port(&ports, t0 + Duration::from_secs(29)), Some(47470));
        assert_eq!(designated_port(&ports, t0 + Duration::from_secs(30)), Some(47471));
        assert_eq!(designated_port(&ports, t0 + Duration::from_secs(150)), Some(47470));
        assert_eq!(designated_port(&[], t0), None);
    }

    #[test]
    fn schedule_bursts_then_modulates_within_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let t0 = Instant::from_unix_ms(10_000);
        let mut s = AnnounceSchedule::new(t0);
        assert_eq!(s.first(), t0);
        assert_eq!(s.next_after(t0, false, &mut rng), t0 + Duration::from_millis(100));
        assert_eq!(s.next_after(t0, false, &mut rng), t0 + Duration::from_millis(300));
        let mut t = t0 + Duration::from_millis(300);
        let mut intervals = Vec::new();
        for _ in 0..60 {
            let next = s.next_after(t, false, &mut rng);
            intervals.push(next - t);
            t = next;
        }
        assert!(intervals.iter().all(|d| *d >= Duration::from_millis(800) && *d <= Duration::from_secs(24)));
        assert!(intervals[0] < Duration::from_secs(2), "starts fast: {:?}", intervals[0]);
        assert!(intervals.iter().any(|d| *d > Duration::from_secs(12)), "slows down mid-period");
        let slow = s.next_after(t, true, &mut rng) - t;
        assert!(slow >= Duration::from_secs(16), "enough peers holds the slow end: {slow:?}");
    }
}

//! Who is online: the table of live peers per mesh, fed by signed announcements. In memory (it is
//! rebuilt within one re-announce interval after a restart) and bounded: per address, per mesh and
//! in total. Pure: every call takes `now`.

use node_core::presence::{AnnounceReply, LivePeer, SignedPresence, StatementError, PRESENCE_CLOCK_WINDOW_MS};
use node_core::PeerId;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// How often nodes re-announce.
pub const REANNOUNCE_AFTER_SECS: u32 = 60;
/// A peer stays listed this long after its last announcement (three missed announcements).
pub const LISTED_FOR_MS: u64 = 3 * REANNOUNCE_AFTER_SECS as u64 * 1000;
/// Most peers one list answer carries.
pub const MAX_LISTED: usize = 100;

/// Bounds on the table.
#[derive(Debug, Clone, Copy)]
pub struct PresenceLimits {
    /// Peers announced from one address (IPv6: one /64), since many users share a NAT.
    pub per_ip: usize,
    /// Peers in one mesh.
    pub per_mesh: usize,
    /// Peers overall.
    pub total: usize,
}

impl Default for PresenceLimits {
    fn default() -> Self {
        PresenceLimits { per_ip: 64, per_mesh: 10_000, total: 100_000 }
    }
}

/// Why an announcement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceError {
    /// Malformed or badly signed.
    #[error(transparent)]
    Invalid(#[from] StatementError),
    /// Signed too far from the server's clock.
    #[error("the announcement's clock is more than two minutes off the server's")]
    ClockSkew,
    /// Not newer than the one already listed (a replay).
    #[error("an announcement at least as new is already listed")]
    Stale,
    /// A limit is reached.
    #[error("too many peers announced from {0}")]
    Full(&'static str),
}

impl PresenceError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            PresenceError::Invalid(StatementError::BadSignature) => "bad_signature",
            PresenceError::Invalid(_) => "bad_presence",
            PresenceError::ClockSkew => "clock_skew",
            PresenceError::Stale => "stale_announcement",
            PresenceError::Full(_) => "presence_full",
        }
    }
}

struct Entry {
    live: LivePeer,
    key: IpKey,
    expires_ms: u64,
}

/// The address bucket a peer counts against: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct IpKey([u8; 8], bool);

fn ip_key(ip: IpAddr) -> IpKey {
    match ip {
        IpAddr::V4(v4) => ip_key_v4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ip_key_v4(v4.octets()),
            None => IpKey(v6.octets()[..8].try_into().unwrap_or_default(), true),
        },
    }
}

fn ip_key_v4(o: [u8; 4]) -> IpKey {
    IpKey([o[0], o[1], o[2], o[3], 0, 0, 0, 0], false)
}

/// The live peers of every mesh.
#[derive(Default)]
pub struct PresenceTable {
    limits: PresenceLimits,
    meshes: BTreeMap<String, BTreeMap<PeerId, Entry>>,
    mesh_of: BTreeMap<PeerId, String>,
    per_ip: BTreeMap<IpKey, usize>,
}

impl PresenceTable {
    /// An empty table with `limits`.
    pub fn new(limits: PresenceLimits) -> Self {
        PresenceTable { limits, ..Default::default() }
    }

    /// Lists (or refreshes) the announcing peer, seen from `ip`.
    pub fn announce(
        &mut self,
        signed: SignedPresence,
        ip: IpAddr,
        now_ms: u64,
    ) -> Result<AnnounceReply, PresenceError> {
        signed.verify()?;
        let p = &signed.presence;
        if p.unix_ms.abs_diff(now_ms) > PRESENCE_CLOCK_WINDOW_MS {
            return Err(PresenceError::ClockSkew);
        }
        let key = ip_key(ip);
        let previous = self.mesh_of.get(&p.peer_id).and_then(|m| self.meshes.get(m)?.get(&p.peer_id));
        if let Some(prev) = previous {
            if prev.live.presence.presence.unix_ms >= p.unix_ms {
                return Err(PresenceError::Stale);
            }
        }
        let same_key = previous.is_some_and(|e| e.key == key);
        let same_mesh = self.mesh_of.get(&p.peer_id).is_some_and(|m| *m == p.mesh_id);
        if !same_key && self.per_ip.get(&key).copied().unwrap_or(0) >= self.limits.per_ip {
            return Err(PresenceError::Full("this address"));
        }
        if !same_mesh && self.meshes.get(&p.mesh_id).map_or(0, |m| m.len()) >= self.limits.per_mesh {
            return Err(PresenceError::Full("this mesh"));
        }
        if previous.is_none() && self.mesh_of.len() >= self.limits.total {
            return Err(PresenceError::Full("anywhere (the server is full)"));
        }
        let peer = p.peer_id;
        self.remove(&peer);
        let mesh = p.mesh_id.clone();
        *self.per_ip.entry(key).or_default() += 1;
        self.mesh_of.insert(peer, mesh.clone());
        let entry =
            Entry { live: LivePeer { presence: signed, observed_ip: ip }, key, expires_ms: now_ms + LISTED_FOR_MS };
        self.meshes.entry(mesh).or_default().insert(peer, entry);
        Ok(AnnounceReply { reannounce_after_secs: REANNOUNCE_AFTER_SECS, observed_ip: ip })
    }

    /// The live peers of `mesh`, most recently announced first, at most [`MAX_LISTED`].
    pub fn list(&self, mesh: &str, now_ms: u64) -> Vec<LivePeer> {
        let Some(peers) = self.meshes.get(mesh) else { return Vec::new() };
        let mut live: Vec<&Entry> = peers.values().filter(|e| e.expires_ms > now_ms).collect();
        live.sort_by_key(|e| std::cmp::Reverse(e.live.presence.presence.unix_ms));
        live.into_iter().take(MAX_LISTED).map(|e| e.live.clone()).collect()
    }

    /// How many peers are listed (live or awaiting the next prune).
    pub fn len(&self) -> usize {
        self.mesh_of.len()
    }

    /// True when nobody is listed.
    pub fn is_empty(&self) -> bool {
        self.mesh_of.is_empty()
    }

    /// Drops every entry expired at `now_ms` (the server's background task calls this; until then an
    /// expired entry still counts against the limits but is never listed).
    pub fn prune(&mut self, now_ms: u64) {
        let expired: Vec<PeerId> = self
            .meshes
            .values()
            .flat_map(|m| m.iter().filter(|(_, e)| e.expires_ms <= now_ms).map(|(p, _)| *p))
            .collect();
        for peer in expired {
            self.remove(&peer);
        }
    }

    fn remove(&mut self, peer: &PeerId) {
        let Some(mesh) = self.mesh_of.remove(peer) else { return };
        let Some(peers) = self.meshes.get_mut(&mesh) else { return };
        if let Some(e) = peers.remove(peer) {
            if let Some(n) = self.per_ip.get_mut(&e.key) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&e.key);
                }
            }
        }
        if peers.is_empty() {
            self.meshes.remove(&mesh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::identity::Keypair;
    use node_core::presence::Presence;
    use node_core::wire::Capabilities;

    const NOW: u64 = 1_750_000_000_000;

    fn announce(seed: u8, mesh: &str, unix_ms: u64) -> SignedPresence {
        let keys = Keypair::from_secret([seed; 32]);
        Presence {
            peer_id: keys.peer_id(),
            name: format!("n{seed}"),
            mesh_id: mesh.into(),
            addrs: vec![],
            nat: Default::default(),
            capabilities: Capabilities(0),
            unix_ms,
        }
        .sign(&keys)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peers_are_listed_per_mesh_newest_first_until_they_stop_announcing() {
        let mut t = PresenceTable::default();
        t.announce(announce(1, "a", NOW), ip("10.0.0.1"), NOW).unwrap();
        t.announce(announce(2, "a", NOW + 1), ip("10.0.0.2"), NOW + 1).unwrap();
        t.announce(announce(3, "b", NOW), ip("10.0.0.3"), NOW).unwrap();
        let names: Vec<String> = t.list("a", NOW + 2).iter().map(|p| p.presence.presence.name.clone()).collect();
        assert_eq!(names, ["n2", "n1"]);
        assert_eq!(t.list("b", NOW + 2).len(), 1);
        assert_eq!(t.list("a", NOW + LISTED_FOR_MS + 1).len(), 0);
        t.prune(NOW + LISTED_FOR_MS + 2);
        assert!(t.is_empty());
    }

    #[test]
    fn replays_skew_and_bad_signatures_are_refused() {
        let mut t = PresenceTable::default();
        let first = announce(1, "a", NOW);
        t.announce(first.clone(), ip("10.0.0.1"), NOW).unwrap();
        assert_eq!(t.announce(first, ip("10.0.0.1"), NOW + 5), Err(PresenceError::Stale));
        let skewed = announce(1, "a", NOW + PRESENCE_CLOCK_WINDOW_MS + 10);
        assert_eq!(t.announce(skewed, ip("10.0.0.1"), NOW), Err(PresenceError::ClockSkew));
        let mut forged = announce(2, "a", NOW);
        forged.presence.mesh_id = "b".into();
        assert_eq!(t.announce(forged, ip("10.0.0.1"), NOW), Err(PresenceError::Invalid(StatementError::BadSignature)));
    }

    #[test]
    fn a_peer_moving_mesh_or_address_is_listed_once_and_counted_once() {
        let mut t = PresenceTable::new(PresenceLimits { per_ip: 1, per_mesh: 10, total: 10 });
        t.announce(announce(1, "a", NOW), ip("10.0.0.1"), NOW).unwrap();
        t.announce(announce(1, "b", NOW + 1), ip("10.0.0.1"), NOW + 1).unwrap();
        assert_eq!((t.list("a", NOW + 2).len(), t.list("b", NOW + 2).len(), t.len()), (0, 1, 1));
        t.announce(announce(1, "b", NOW + 2), ip("10.0.0.2"), NOW + 2).unwrap();
        // 10.0.0.1 is free again, 10.0.0.2 is taken.
        t.announce(announce(2, "b", NOW + 3), ip("10.0.0.1"), NOW + 3).unwrap();
        assert_eq!(
            t.announce(announce(3, "b", NOW + 3), ip("10.0.0.2"), NOW + 3),
            Err(PresenceError::Full("this address"))
        );
    }

    #[test]
    fn limits_per_address_per_ipv6_net_per_mesh_and_in_total() {
        let mut t = PresenceTable::new(PresenceLimits { per_ip: 2, per_mesh: 3, total: 4 });
        t.announce(announce(1, "a", NOW), ip("2001:db8::1"), NOW).unwrap();
        t.announce(announce(2, "a", NOW), ip("2001:db8::2"), NOW).unwrap();
        let same_64 = t.announce(announce(3, "a", NOW), ip("2001:db8::3"), NOW);
        assert_eq!(same_64, Err(PresenceError::Full("this address")));
        t.announce(announce(3, "a", NOW), ip("10.0.0.3"), NOW).unwrap();
        assert_eq!(t.announce(announce(4, "a", NOW), ip("10.0.0.4"), NOW), Err(PresenceError::Full("this mesh")));
        t.announce(announce(4, "b", NOW), ip("10.0.0.4"), NOW).unwrap();
        let full = t.announce(announce(5, "c", NOW), ip("10.0.0.5"), NOW);
        assert_eq!(full, Err(PresenceError::Full("anywhere (the server is full)")));
    }

    #[test]
    fn a_list_is_capped() {
        let mut t = PresenceTable::new(PresenceLimits { per_ip: 1000, per_mesh: 1000, total: 1000 });
        for seed in 0..(MAX_LISTED as u8 + 20) {
            t.announce(announce(seed, "a", NOW), ip("10.0.0.1"), NOW).unwrap();
        }
        assert_eq!(t.list("a", NOW).len(), MAX_LISTED);
    }
}

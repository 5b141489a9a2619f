//! The name registry's rules (namebump's model, with its holes fixed), with no IO.
//!
//! - The first valid claim of a free (or expired) name owns it.
//! - Updates and deletes must be signed by the owner with a strictly higher `seq`: a replayed or
//!   reordered record is refused, and nobody else can touch the name.
//! - Every live name is charged to the IP address that last bumped it, and counts against that
//!   address's quota (20 per IPv4 address; 5 per IPv6 address, 20 per /64 and 100 per /48, so
//!   an IPv6 user cannot dodge the quota by hopping addresses). A name that moves to another IP
//!   is charged to the new one.
//! - A name lives 7 days after its last bump, shortened as its IP uses up its quota: the bump
//!   that takes an address's `k`-th slot of `q` (counting from 1) lives `7 d × (q − k + 1) / q`.
//!   Light users keep names for a week; an address filling its quota gets ever shorter leases,
//!   and one past it is refused.

use core::time::Duration;
use node_core::names::{Name, RecordError, SignedNameRecord};
use node_core::PeerId;
use std::net::IpAddr;

/// How long a name lives after a bump from an address with a free quota.
pub const FULL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Names per address and prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Per IPv4 address.
    pub per_ipv4: u32,
    /// Per IPv6 address.
    pub per_ipv6: u32,
    /// Per IPv6 /64.
    pub per_ipv6_64: u32,
    /// Per IPv6 /48.
    pub per_ipv6_48: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { per_ipv4: 20, per_ipv6: 5, per_ipv6_64: 20, per_ipv6_48: 100 }
    }
}

/// A group of addresses that shares one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// One IPv4 address.
    V4([u8; 4]),
    /// One IPv6 address.
    V6([u8; 16]),
    /// An IPv6 /64 (first 8 bytes).
    V6Net64([u8; 8]),
    /// An IPv6 /48 (first 6 bytes).
    V6Net48([u8; 6]),
}

/// The buckets an address is charged to, with each one's quota.
pub fn buckets(ip: IpAddr, quotas: &Quotas) -> Vec<(Bucket, u32)> {
    match ip {
        IpAddr::V4(v4) => vec![(Bucket::V4(v4.octets()), quotas.per_ipv4)],
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => vec![(Bucket::V4(v4.octets()), quotas.per_ipv4)],
            None => {
                let o = v6.octets();
                let mut n64 = [0u8; 8];
                n64.copy_from_slice(&o[..8]);
                let mut n48 = [0u8; 6];
                n48.copy_from_slice(&o[..6]);
                vec![
                    (Bucket::V6(o), quotas.per_ipv6),
                    (Bucket::V6Net64(n64), quotas.per_ipv6_64),
                    (Bucket::V6Net48(n48), quotas.per_ipv6_48),
                ]
            }
        },
    }
}

/// A name as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    /// The last accepted record, with the owner's signature.
    pub signed: SignedNameRecord,
    /// The address it is charged to.
    pub ip: IpAddr,
    /// When it expires (Unix milliseconds).
    pub expires_unix_ms: u64,
}

impl StoredName {
    /// Whether it is still alive at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        self.expires_unix_ms > now_ms
    }

    /// The owner.
    pub fn owner(&self) -> PeerId {
        self.signed.record.owner
    }
}

/// What to do with an accepted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store it (a claim or an update), charged to the requesting IP, until `expires_unix_ms`.
    Store {
        /// The new expiry.
        expires_unix_ms: u64,
    },
    /// Remove the name.
    Delete,
}

/// Why a record was refused. Each has a stable code for the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The record's own checks failed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The path's name and the record's name differ.
    #[error("the record is for another name")]
    NameMismatch,
    /// The name is owned by another key.
    #[error("the name belongs to another key")]
    NotOwner,
    /// The seq is not above the stored one: a replay or a reordered update.
    #[error("seq {got} is not above the current {current}")]
    StaleSeq {
        /// The record's seq.
        got: u64,
        /// The stored seq.
        current: u64,
    },
    /// Deleting a name that does not exist.
    #[error("no such name")]
    NotFound,
    /// The requesting address (or its prefix) holds its whole quota.
    #[error("this address already holds {used} names (quota {quota})")]
    QuotaExceeded {
        /// Names charged to the fullest bucket.
        used: u32,
        /// That bucket's quota.
        quota: u32,
    },
}

impl RegistryError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::Record(RecordError::ValueTooLong(_)) => "value_too_long",
            RegistryError::Record(_) => "bad_signature",
            RegistryError::NameMismatch => "name_mismatch",
            RegistryError::NotOwner => "not_owner",
            RegistryError::StaleSeq { .. } => "stale_seq",
            RegistryError::NotFound => "not_found",
            RegistryError::QuotaExceeded { .. } => "quota_exceeded",
        }
    }
}

/// The lease for a bump that takes slot `used + 1` of `quota`.
pub fn lifetime(used: u32, quota: u32) -> Duration {
    if quota == 0 || used >= quota {
        return Duration::ZERO;
    }
    FULL_LIFETIME.mul_f64(f64::from(quota - used) / f64::from(quota))
}

/// Decides on `incoming`, sent from `ip` to the path name `name`, given the stored entry for
/// that name (if any) and `used(bucket)`: how many *other* live names are charged to each bucket.
pub fn decide(
    name: &Name,
    incoming: &SignedNameRecord,
    stored: Option<&StoredName>,
    ip: IpAddr,
    quotas: &Quotas,
    used: impl Fn(Bucket) -> u32,
    now_ms: u64,
) -> Result<Decision, RegistryError> {
    incoming.verify()?;
    let rec = &incoming.record;
    if rec.name != *name {
        return Err(RegistryError::NameMismatch);
    }
    let current = stored.filter(|s| s.live(now_ms));
    if let Some(cur) = current {
        if cur.owner() != rec.owner {
            return Err(RegistryError::NotOwner);
        }
        if rec.seq <= cur.signed.record.seq {
            return Err(RegistryError::StaleSeq { got: rec.seq, current: cur.signed.record.seq });
        }
    }
    if rec.delete {
        return match current {
            Some(_) => Ok(Decision::Delete),
            None => Err(RegistryError::NotFound),
        };
    }
    let mut lease = FULL_LIFETIME;
    for (bucket, quota) in buckets(ip, quotas) {
        let n = used(bucket);
        if n >= quota {
            return Err(RegistryError::QuotaExceeded { used: n, quota });
        }
        lease = lease.min(lifetime(n, quota));
    }
    Ok(Decision::Store { expires_unix_ms: now_ms.saturating_add(lease.as_millis() as u64) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::identity::Keypair;
    use node_core::names::NameRecord;
    use std::collections::BTreeMap;

    const NOW: u64 = 1_750_000_000_000;

    fn rec(owner: &Keypair, name: &str, seq: u64, delete: bool) -> SignedNameRecord {
        NameRecord {
            name: Name::parse(name).unwrap(),
            value: b"v".to_vec(),
            owner: owner.peer_id(),
            seq,
            unix_ms: NOW,
            delete,
        }
        .sign(owner)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A tiny in-memory registry driving `decide`, as the database layer will.
    #[derive(Default)]
    struct Mem {
        names: BTreeMap<Name, StoredName>,
    }

    impl Mem {
        fn put(&mut self, r: SignedNameRecord, from: IpAddr, now: u64) -> Result<Decision, RegistryError> {
            let name = r.record.name.clone();
            let q = Quotas::default();
            let names = &self.names;
            let used = |b: Bucket| {
                names
                    .values()
                    .filter(|s| s.live(now) && s.signed.record.name != name)
                    .filter(|s| buckets(s.ip, &q).iter().any(|(x, _)| *x == b))
                    .count() as u32
            };
            let d = decide(&name, &r, self.names.get(&name), from, &q, used, now)?;
            match &d {
                Decision::Store { expires_unix_ms } => {
                    self.names.insert(name, StoredName { signed: r, ip: from, expires_unix_ms: *expires_unix_ms });
                }
                Decision::Delete => {
                    self.names.remove(&name);
                }
            }
            Ok(d)
        }
    }

    #[test]
    fn first_claim_owns_and_only_the_owner_with_a_higher_seq_may_change_it() {
        let (alice, mallory) = (Keypair::from_secret([1; 32]), Keypair::from_secret([2; 32]));
        let mut m = Mem::default();
        let a = ip("198.51.100.1");
        assert!(m.put(rec(&alice, "alice", 1, false), a, NOW).is_ok());
        assert_eq!(m.put(rec(&mallory, "alice", 9, false), a, NOW), Err(RegistryError::NotOwner));
        assert_eq!(m.put(rec(&alice, "alice", 1, false), a, NOW), Err(RegistryError::StaleSeq { got: 1, current: 1 }));
        assert!(m.put(rec(&alice, "alice", 2, false), a, NOW).is_ok());
        assert_eq!(m.put(rec(&mallory, "alice", 3, true), a, NOW), Err(RegistryError::NotOwner));
        assert_eq!(m.put(rec(&alice, "alice", 3, true), a, NOW), Ok(Decision::Delete));
        assert_eq!(m.put(rec(&alice, "alice", 4, true), a, NOW), Err(RegistryError::NotFound));
        // Free again: anyone may claim it.
        assert!(m.put(rec(&mallory, "alice", 1, false), a, NOW).is_ok());
    }

    #[test]
    fn a_forged_or_mismatched_record_is_refused() {
        let alice = Keypair::from_secret([1; 32]);
        let mut r = rec(&alice, "alice", 1, false);
        r.record.value = b"changed".to_vec();
        let q = Quotas::default();
        let name = Name::parse("alice").unwrap();
        assert!(matches!(decide(&name, &r, None, ip("192.0.2.1"), &q, |_| 0, NOW), Err(RegistryError::Record(_))));
        let other = Name::parse("bob").unwrap();
        let r = rec(&alice, "alice", 1, false);
        assert_eq!(decide(&other, &r, None, ip("192.0.2.1"), &q, |_| 0, NOW), Err(RegistryError::NameMismatch));
    }

    #[test]
    fn the_21st_name_from_one_ipv4_address_is_refused_and_leases_shrink() {
        let k = Keypair::from_secret([3; 32]);
        let mut m = Mem::default();
        let a = ip("203.0.113.7");
        let mut leases = Vec::new();
        for i in 0..20 {
            match m.put(rec(&k, &format!("n{i}"), 1, false), a, NOW).unwrap() {
                Decision::Store { expires_unix_ms } => leases.push(expires_unix_ms - NOW),
                d => panic!("{d:?}"),
            }
        }
        assert_eq!(leases[0], FULL_LIFETIME.as_millis() as u64);
        assert!(leases.windows(2).all(|w| w[1] < w[0]), "each slot lives shorter");
        assert_eq!(leases[19], FULL_LIFETIME.as_millis() as u64 / 20);
        let err = m.put(rec(&k, "n20", 1, false), a, NOW).unwrap_err();
        assert_eq!(err, RegistryError::QuotaExceeded { used: 20, quota: 20 });
        assert_eq!(err.code(), "quota_exceeded");
        // Another address is unaffected; bumping an existing name from the full address works.
        assert!(m.put(rec(&k, "n20", 1, false), ip("203.0.113.8"), NOW).is_ok());
        assert!(m.put(rec(&k, "n3", 2, false), a, NOW).is_ok());
    }

    #[test]
    fn ipv6_quotas_cover_the_address_and_its_prefixes() {
        let k = Keypair::from_secret([4; 32]);
        let mut m = Mem::default();
        for i in 0..5 {
            assert!(m.put(rec(&k, &format!("a{i}"), 1, false), ip("2001:db8:1:1::1"), NOW).is_ok());
        }
        assert!(matches!(
            m.put(rec(&k, "a5", 1, false), ip("2001:db8:1:1::1"), NOW),
            Err(RegistryError::QuotaExceeded { quota: 5, .. })
        ));
        // Hopping addresses inside the /64 runs into the /64 cap.
        let mut refused = None;
        for i in 0..40u32 {
            let addr = ip(&format!("2001:db8:1:1::{:x}", 0x100 + i));
            if let Err(e) = m.put(rec(&k, &format!("b{i}"), 1, false), addr, NOW) {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused, Some(RegistryError::QuotaExceeded { used: 20, quota: 20 }));
    }

    #[test]
    fn a_name_that_moves_is_charged_to_its_new_address() {
        let k = Keypair::from_secret([5; 32]);
        let mut m = Mem::default();
        let (a, b) = (ip("198.51.100.1"), ip("198.51.100.2"));
        m.put(rec(&k, "roam", 1, false), a, NOW).unwrap();
        m.put(rec(&k, "roam", 2, false), b, NOW).unwrap();
        assert_eq!(m.names[&Name::parse("roam").unwrap()].ip, b);
    }

    #[test]
    fn expired_names_are_free_and_do_not_count() {
        let (alice, bob) = (Keypair::from_secret([1; 32]), Keypair::from_secret([2; 32]));
        let mut m = Mem::default();
        let a = ip("198.51.100.1");
        m.put(rec(&alice, "gone", 5, false), a, NOW).unwrap();
        let later = NOW + FULL_LIFETIME.as_millis() as u64 + 1;
        assert!(m.put(rec(&bob, "gone", 1, false), a, later).is_ok(), "an expired name is free");
        assert_eq!(lifetime(0, 20), FULL_LIFETIME);
        assert_eq!(lifetime(20, 20), Duration::ZERO);
    }
}

//! Names in the DHT: a bootstrap server's answers, mirrored by the nodes that got them, so that a
//! name keeps resolving while its server cannot be reached ([`RecordKind::Name`]).
//!
//! The driver hands the node every answer it gets from a server ([`Command::MirrorName`]); the
//! node stores it at the peers closest to its key, and again every [`REMIRROR`] while the server
//! still vouches for it, so the record outlives churn among the peers that hold it. A lookup
//! ([`Command::LookupName`]) names the server the caller trusts: only that server's answer for
//! that name is taken, and it ends with [`Event::NameResolved`].
//!
//! Limits, by design of a fallback: a lookup takes the first valid answer the DHT returns,
//! weighed against what is held here, so a peer replaying an older answer of the same server
//! (still within the time the server vouched for it) can make a lookup return that one; it cannot
//! forge or alter one, and a reachable server is always asked first. A deleted name gets no
//! signed answer from the server: copies other peers stored live until the expiry it gave them.
//!
//! [`RecordKind::Name`]: crate::overlay::record::RecordKind::Name
//! [`Command::MirrorName`]: crate::Command::MirrorName
//! [`Command::LookupName`]: crate::Command::LookupName

use super::Node;
use crate::identity::PeerId;
use crate::interface::{CommandError, CommandId, Event};
use crate::names::{Name, NameAnswer};
use crate::overlay::kademlia::{Key, LookupDone, LookupId, Record, StoreError};
use crate::overlay::record::{name_key, SignedRecord, MAX_NAME_TTL};
use crate::time::Instant;
use core::time::Duration;
use std::collections::BTreeMap;

/// Answers kept and stored again; past this, the one the server vouches for the shortest goes.
const MIRRORED: usize = 32;
/// How often a mirrored answer is stored again (as often as a node's own addresses).
const REMIRROR: Duration = Duration::from_secs(20 * 60);
/// How soon a store that could not start (every lookup slot taken) is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// Name lookups at once.
const NAME_LOOKUPS: usize = 16;

/// A name being looked up.
#[derive(Debug)]
struct Asked {
    command: CommandId,
    server: PeerId,
    name: Name,
}

/// What the node keeps for names in the DHT.
#[derive(Debug, Default)]
pub(super) struct NameMirror {
    /// Answers we mirror, by key, with when each is to be stored next.
    mirrored: BTreeMap<Key, (Instant, SignedRecord)>,
    /// Lookups under way.
    lookups: BTreeMap<LookupId, Asked>,
}

impl Node {
    /// [`Command::MirrorName`](crate::Command::MirrorName): keeps `answer` in the DHT while it
    /// lasts.
    pub(super) fn mirror_name(&mut self, now: Instant, answer: &NameAnswer) -> Result<(), CommandError> {
        let record = SignedRecord::mirror(answer)?;
        if record.expires() <= now || record.expires() > now + MAX_NAME_TTL {
            return Err(CommandError::AnswerOutOfTime);
        }
        let mirror = &mut self.overlay.names.mirrored;
        let key = record.key();
        if let Some((_, held)) = mirror.get(&key) {
            if !record.supersedes(held) {
                // The same answer again, or an older one: what we hold stays.
                return Ok(());
            }
        } else if mirror.len() >= MIRRORED {
            let shortest = mirror.iter().min_by_key(|(_, (_, r))| r.expires_ms).map(|(k, _)| *k);
            match shortest {
                Some(k) if mirror[&k].1.expires_ms < record.expires_ms => {
                    mirror.remove(&k);
                }
                _ => return Err(CommandError::Busy("mirroring as many names as it keeps")),
            }
        }
        mirror.insert(key, (now, record));
        self.names_maintain(now);
        Ok(())
    }

    /// [`Command::ForgetName`](crate::Command::ForgetName).
    pub(super) fn forget_name(&mut self, server: &PeerId, name: &Name) {
        let key = name_key(server, name.as_str());
        self.overlay.names.mirrored.remove(&key);
        self.overlay.overlay.remove_record(&key);
    }

    /// [`Command::LookupName`](crate::Command::LookupName): the DHT is asked, and what it finds
    /// is weighed against what is held here (the newer answer wins). With every lookup slot
    /// taken, what is held here answers alone.
    pub(super) fn lookup_name(
        &mut self,
        now: Instant,
        command: CommandId,
        server: PeerId,
        name: Name,
    ) -> Result<(), CommandError> {
        let key = name_key(&server, name.as_str());
        let started = if self.overlay.names.lookups.len() < NAME_LOOKUPS {
            self.overlay.overlay.find_record(now, key).ok()
        } else {
            None
        };
        let Some(lookup) = started else {
            let Some(answer) = self.held_answer(now, &server, &name) else {
                return Err(CommandError::Busy("name lookups"));
            };
            self.emit(Event::NameResolved { command, server, name, answer: Some(Box::new(answer)) });
            return Ok(());
        };
        self.overlay.names.lookups.insert(lookup, Asked { command, server, name });
        self.overlay_pump(now);
        Ok(())
    }

    /// A DHT lookup ended; true if it was a name's (then answered).
    pub(super) fn name_lookup_done(&mut self, now: Instant, done: &LookupDone<PeerId, SignedRecord>) -> bool {
        let Some(Asked { command, server, name }) = self.overlay.names.lookups.remove(&done.id) else { return false };
        let found = done.record.as_ref().and_then(|r| answer_for(r, &server, &name));
        let held = self.held_answer(now, &server, &name);
        let answer = found.into_iter().chain(held).max_by_key(|a| a.record.record.seq).map(Box::new);
        self.emit(Event::NameResolved { command, server, name, answer });
        true
    }

    /// The newest answer of `server` for `name` held here (mirrored by us, or stored for others).
    fn held_answer(&self, now: Instant, server: &PeerId, name: &Name) -> Option<NameAnswer> {
        let key = name_key(server, name.as_str());
        let mirrored = self.overlay.names.mirrored.get(&key).map(|(_, r)| r);
        let here = mirrored.into_iter().chain(self.overlay.overlay.dht().record(now, &key));
        here.filter(|r| r.expires() > now)
            .filter_map(|r| answer_for(r, server, name))
            .max_by_key(|a| a.record.record.seq)
    }

    /// Once a second: answers the server no longer vouches for are dropped, and the others are
    /// stored again when due, once the node has a neighbor to store them at.
    pub(super) fn names_maintain(&mut self, now: Instant) {
        let mirror = &mut self.overlay.names.mirrored;
        mirror.retain(|_, (_, r)| r.expires() > now);
        if self.overlay.overlay.membership().active().is_empty() {
            return;
        }
        let due: Vec<Key> = mirror.iter().filter(|(_, (next, _))| now >= *next).map(|(k, _)| *k).collect();
        for key in due {
            let Some((_, record)) = self.overlay.names.mirrored.get(&key) else { continue };
            let next = match self.overlay.overlay.put_record(now, record.clone()) {
                Ok(_) => now + REMIRROR,
                // Every lookup slot taken (or our store full of closer records): later.
                Err(StoreError::Full) => now + RETRY,
                // A newer answer is stored here already, or this one no longer fits: ours is
                // not worth storing again.
                Err(_) => {
                    self.overlay.names.mirrored.remove(&key);
                    continue;
                }
            };
            if let Some((at, _)) = self.overlay.names.mirrored.get_mut(&key) {
                *at = next;
            }
        }
        self.overlay_pump(now);
    }
}

/// The answer `record` carries, if it is `server`'s for `name` and checks out against `server`
/// (who the caller trusts). A deleted name is no answer.
fn answer_for(record: &SignedRecord, server: &PeerId, name: &Name) -> Option<NameAnswer> {
    let answer = record.name_answer()?;
    let signed = &answer.record.record;
    (record.publisher == *server && signed.name == *name && !signed.delete && answer.verify(server).is_ok())
        .then_some(answer)
}

//! The receiving side: one download, fed by one or more sources.

use super::{chunk_count, hash_list_hash, Action};
use crate::identity::PeerId;
use crate::interface::{CommandError, Event, FileHash, Output};
use crate::time::Instant;
use crate::wire::{Message, Offer, TransferId, HASHES_PER_PAGE, MAX_WANT};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

/// A chunk request unanswered this long is asked of someone (possibly the same source) again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Least time between two progress events.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting the chunk-hash list.
    Hashes,
    /// Collecting chunks.
    Chunks,
    /// Every chunk is written; the driver is checking the whole file.
    Finalizing,
}

#[derive(Debug)]
pub(super) struct Download {
    file: FileHash,
    /// The first offer's id: the id events carry.
    transfer_id: TransferId,
    first_source: PeerId,
    name: String,
    size: u64,
    chunk_size: u32,
    chunks: u32,
    hash_list_hash: [u8; 32],
    hashes: Vec<[u8; 32]>,
    /// Who was asked for the next page of hashes, and when; pages from anyone else are ignored.
    hashes_asked: Option<(PeerId, Instant)>,
    /// The source the current hash list comes from.
    hashes_source: Option<PeerId>,
    /// How many times a hash list was started: picks the next source in turn.
    hashes_turn: usize,
    have: Vec<bool>,
    done_bytes: u64,
    sources: BTreeMap<PeerId, TransferId>,
    in_flight: BTreeMap<u32, (PeerId, Instant)>,
    /// Verified chunks handed to the driver and not yet confirmed written. They count against
    /// the window too, so a slow disk throttles requests instead of piling chunks up in memory.
    writing: BTreeSet<u32>,
    /// Where the scan for missing chunks resumes: keeps `pump` from rescanning from zero.
    cursor: u32,
    phase: Phase,
    /// Since when no source has been connected (checked on each tick).
    orphaned_since: Option<Instant>,
    last_progress: Option<(Instant, u64)>,
}

impl Download {
    pub fn new(from: PeerId, offer: &Offer, have: Vec<bool>) -> Result<Self, CommandError> {
        let chunks = chunk_count(offer.size, offer.chunk_size);
        let chunks = u32::try_from(chunks).map_err(|_| CommandError::InvalidFile("too many chunks"))?;
        let have = if have.len() == chunks as usize { have } else { vec![false; chunks as usize] };
        let mut d = Download {
            file: FileHash(offer.file_hash),
            transfer_id: offer.transfer_id,
            first_source: from,
            name: offer.name.clone(),
            size: offer.size,
            chunk_size: offer.chunk_size,
            chunks,
            hash_list_hash: offer.hash_list_hash,
            hashes: Vec::new(),
            hashes_asked: None,
            hashes_source: None,
            hashes_turn: 0,
            have,
            done_bytes: 0,
            sources: BTreeMap::from([(from, offer.transfer_id)]),
            in_flight: BTreeMap::new(),
            writing: BTreeSet::new(),
            cursor: 0,
            phase: Phase::Hashes,
            orphaned_since: None,
            last_progress: None,
        };
        d.done_bytes = (0..chunks).filter(|i| d.have[*i as usize]).map(|i| d.chunk_len(i)).sum();
        Ok(d)
    }

    fn chunk_len(&self, index: u32) -> u64 {
        let offset = u64::from(index) * u64::from(self.chunk_size);
        (self.size - offset).min(u64::from(self.chunk_size))
    }

    /// Whether `offer` describes this download's content the same way (one source's chunks and
    /// hashes are only usable if every source agrees on size, chunking and hash list).
    pub fn matches(&self, offer: &Offer) -> bool {
        offer.size == self.size && offer.chunk_size == self.chunk_size && offer.hash_list_hash == self.hash_list_hash
    }

    /// Every (source, its transfer id).
    pub fn sources(&self) -> impl Iterator<Item = (PeerId, TransferId)> + '_ {
        self.sources.iter().map(|(p, t)| (*p, *t))
    }

    /// How long no source has been connected, if none is now.
    pub fn orphaned_for(&mut self, now: Instant, connected: &BTreeSet<PeerId>) -> Option<core::time::Duration> {
        if self.sources.keys().any(|p| connected.contains(p)) {
            self.orphaned_since = None;
            return None;
        }
        let since = *self.orphaned_since.get_or_insert(now);
        Some(now - since)
    }

    pub fn has_source(&self, peer: &PeerId) -> bool {
        self.sources.contains_key(peer)
    }

    pub fn add_source(&mut self, peer: PeerId, transfer_id: TransferId) {
        self.sources.insert(peer, transfer_id);
    }

    /// The transfer id `peer` offered this download under, if it is a source.
    pub fn source_transfer(&self, peer: &PeerId) -> Option<TransferId> {
        self.sources.get(peer).copied()
    }

    pub fn remove_source(&mut self, peer: &PeerId) {
        self.sources.remove(peer);
        self.source_lost(peer);
    }

    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// The source's link is gone: what it owed us goes back to the pool.
    pub fn source_lost(&mut self, peer: &PeerId) {
        self.in_flight.retain(|_, (p, _)| p != peer);
        if self.hashes_asked.is_some_and(|(p, _)| p == *peer) {
            // The whole list comes from one source, so a bad list has exactly one culprit.
            self.hashes_asked = None;
            self.hashes.clear();
        }
        self.cursor = 0;
    }

    pub fn expire_requests(&mut self, now: Instant) {
        let before = self.in_flight.len();
        self.in_flight.retain(|_, (_, at)| now - *at < REQUEST_TIMEOUT);
        if self.in_flight.len() != before {
            self.cursor = 0;
        }
        if self.hashes_asked.is_some_and(|(_, at)| now - at >= REQUEST_TIMEOUT) {
            self.hashes_asked = None;
            self.hashes.clear();
        }
    }

    /// Asks connected sources for what is missing, up to `window` chunks in flight per source.
    pub fn pump(&mut self, now: Instant, connected: &BTreeSet<PeerId>, window: usize, actions: &mut Vec<Action>) {
        let live: Vec<(PeerId, TransferId)> =
            self.sources.iter().filter(|(p, _)| connected.contains(*p)).map(|(p, t)| (*p, *t)).collect();
        if live.is_empty() {
            return;
        }
        match self.phase {
            Phase::Hashes => {
                if self.hashes_asked.is_none() {
                    if self.hashes.len() as u32 == self.chunks {
                        return self.hashes_complete(None, actions);
                    }
                    // The whole list comes from one source, so a bad list has exactly one
                    // culprit; each fresh start takes the next source in turn, so one that never
                    // answers cannot stall us.
                    let continuing = live.iter().find(|(p, _)| Some(*p) == self.hashes_source).copied();
                    let (peer, tid) = match continuing {
                        Some(src) if !self.hashes.is_empty() => src,
                        _ => {
                            self.hashes.clear();
                            self.hashes_turn = self.hashes_turn.wrapping_add(1);
                            live[self.hashes_turn % live.len()]
                        }
                    };
                    self.hashes_source = Some(peer);
                    self.hashes_asked = Some((peer, now));
                    actions.push(Action::Send {
                        to: peer,
                        msg: Message::HashesRequest { transfer_id: tid, start: self.hashes.len() as u32 },
                    });
                }
            }
            Phase::Chunks => self.request_chunks(now, &live, window, actions),
            Phase::Finalizing => {}
        }
    }

    fn request_chunks(
        &mut self,
        now: Instant,
        live: &[(PeerId, TransferId)],
        window: usize,
        actions: &mut Vec<Action>,
    ) {
        let mut load: BTreeMap<PeerId, usize> = BTreeMap::new();
        for (p, _) in self.in_flight.values() {
            *load.entry(*p).or_default() += 1;
        }
        // Chunks waiting for the disk use up the whole download's credit first.
        let mut budget = (window * live.len()).saturating_sub(self.in_flight.len() + self.writing.len());
        for (peer, tid) in live {
            let mut want = Vec::new();
            while budget > 0 && load.get(peer).copied().unwrap_or(0) + want.len() < window && want.len() < MAX_WANT {
                let Some(index) = self.next_missing() else { break };
                self.in_flight.insert(index, (*peer, now));
                want.push(index);
                budget -= 1;
            }
            *load.entry(*peer).or_default() += want.len();
            if !want.is_empty() {
                actions.push(Action::Send { to: *peer, msg: Message::Want { transfer_id: *tid, chunks: want } });
            }
        }
    }

    /// The next chunk neither on disk nor requested, scanning from the cursor.
    fn next_missing(&mut self) -> Option<u32> {
        while self.cursor < self.chunks {
            let i = self.cursor;
            self.cursor += 1;
            if !self.have[i as usize] && !self.in_flight.contains_key(&i) && !self.writing.contains(&i) {
                return Some(i);
            }
        }
        None
    }

    pub fn on_hashes(&mut self, from: PeerId, start: u32, bytes: &[u8], actions: &mut Vec<Action>) {
        let asked = self.hashes_asked.is_some_and(|(p, _)| p == from);
        if self.phase != Phase::Hashes || !asked || start as usize != self.hashes.len() {
            return; // unasked, late or duplicate
        }
        let remaining = (self.chunks as usize) - self.hashes.len();
        let count = bytes.len() / 32;
        if count == 0 && remaining > 0 || count > remaining || count > HASHES_PER_PAGE as usize {
            return self.bad_source(from, "bad hash page", actions);
        }
        self.hashes.extend(bytes.chunks_exact(32).map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        }));
        self.hashes_asked = None;
        if self.hashes.len() as u32 == self.chunks {
            self.hashes_complete(Some(from), actions);
        }
    }

    /// Checks the whole hash list against the offer; `last` sent its final page.
    fn hashes_complete(&mut self, last: Option<PeerId>, actions: &mut Vec<Action>) {
        if hash_list_hash(&self.hashes) != self.hash_list_hash {
            self.hashes.clear();
            // Every page came from the peer that sent the last one (a source change restarts the list).
            if let Some(culprit) = last {
                self.bad_source(culprit, "hash list does not match the offer", actions);
            }
            return;
        }
        self.phase = Phase::Chunks;
    }

    fn bad_source(&mut self, peer: PeerId, reason: &str, actions: &mut Vec<Action>) {
        self.remove_source(&peer);
        actions.push(Action::Misbehaved { peer, reason: reason.to_owned() });
    }

    pub fn on_chunk(&mut self, from: PeerId, index: u32, data: Vec<u8>, actions: &mut Vec<Action>) {
        match self.in_flight.get(&index) {
            Some((p, _)) if *p == from => {}
            _ => return, // unrequested, or already re-requested elsewhere: ignore
        }
        self.in_flight.remove(&index);
        if self.have[index as usize] || self.writing.contains(&index) {
            return;
        }
        if data.len() as u64 != self.chunk_len(index) || *blake3::hash(&data).as_bytes() != self.hashes[index as usize]
        {
            self.cursor = self.cursor.min(index);
            return self.bad_source(from, "chunk does not match its hash", actions);
        }
        self.writing.insert(index);
        let offset = u64::from(index) * u64::from(self.chunk_size);
        actions.push(Action::Output(Output::WriteChunk { file: self.file, index, offset, data }));
    }

    /// The driver wrote chunk `index`: it now counts as done (and is in the state file soon).
    pub fn on_written(&mut self, now: Instant, index: u32, actions: &mut Vec<Action>) {
        if !self.writing.remove(&index) {
            return;
        }
        self.have[index as usize] = true;
        self.done_bytes += self.chunk_len(index);
        self.progress(now, false, actions);
    }

    pub fn finish_if_complete(&mut self, actions: &mut Vec<Action>) {
        if self.phase == Phase::Chunks && self.done_bytes == self.size && self.have.iter().all(|h| *h) {
            self.phase = Phase::Finalizing;
            self.last_progress = None;
            actions.push(Action::Output(Output::Event(Event::TransferProgress {
                transfer_id: self.transfer_id,
                done: self.done_bytes,
                total: self.size,
            })));
            actions.push(Action::Output(Output::FinalizeDownload {
                file: self.file,
                name: self.name.clone(),
                size: self.size,
            }));
        }
    }

    pub fn progress(&mut self, now: Instant, from_tick: bool, actions: &mut Vec<Action>) {
        if self.phase == Phase::Finalizing {
            return;
        }
        let due = match self.last_progress {
            None => !from_tick || self.done_bytes > 0,
            Some((t, done)) => done != self.done_bytes && now - t >= PROGRESS_INTERVAL,
        };
        if due {
            self.last_progress = Some((now, self.done_bytes));
            actions.push(Action::Output(Output::Event(Event::TransferProgress {
                transfer_id: self.transfer_id,
                done: self.done_bytes,
                total: self.size,
            })));
        }
    }

    pub fn finalized(self, result: Result<String, String>, actions: &mut Vec<Action>) {
        match result {
            Ok(path) => {
                for (peer, tid) in &self.sources {
                    actions.push(Action::Send { to: *peer, msg: Message::TransferComplete { transfer_id: *tid } });
                }
                actions.push(Action::Output(Output::Event(Event::TransferDone {
                    transfer_id: self.transfer_id,
                    from: self.first_source,
                    path,
                    size: self.size,
                    file: self.file,
                })));
            }
            Err(reason) => {
                self.cancel_all(&reason, actions);
                actions.push(self.failed_event(reason));
            }
        }
    }

    pub fn cancel_all(&self, reason: &str, actions: &mut Vec<Action>) {
        for (peer, tid) in &self.sources {
            actions.push(Action::Send {
                to: *peer,
                msg: Message::TransferCancel { transfer_id: *tid, reason: reason.to_owned() },
            });
        }
    }

    pub fn failed_event(&self, reason: String) -> Action {
        Action::Output(Output::Event(Event::TransferFailed { transfer_id: self.transfer_id, reason }))
    }
}

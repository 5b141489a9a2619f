//! File transfer: offers, receiver-driven chunk requests, BLAKE3 verification, resume, and
//! several sources for the same content.
//!
//! The receiver pulls: it asks for the chunk-hash list (checked against the offer's
//! `hash_list_hash`), then asks each source for chunks with `Want`, keeping at most
//! `transfer_window` chunks in flight per source. That window is the per-link credit: a sender
//! only sends what was asked for, so a slow receiver never makes a sender's queues grow, and a
//! receiver never buffers more than `window × chunk_size` per source. Every chunk is verified
//! against its hash before it is written; the driver writes it and records it in a state file, so
//! a restarted receiver accepts the same offer with what is already on disk and asks only for the
//! rest. Offers with the same whole-file hash from several peers merge into one download that
//! requests chunks from all of them.
//!
//! This engine is pure: it returns [`Action`]s, which the node turns into link frames, driver
//! outputs and events.

mod recv;
mod send;

use crate::bounded::BoundedSet;
use crate::identity::PeerId;
use crate::interface::{CommandError, Event, FileHash, Output};
use crate::time::Instant;
use crate::wire::{Message, Offer, TransferId};
use recv::Download;
use send::Outgoing;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::wire::{MAX_CHUNKS, MAX_FILE_SIZE};
/// Most offers awaiting an answer at once; more are declined.
const MAX_PENDING_OFFERS: usize = 64;
/// Most downloads at once; more offers are declined.
const MAX_DOWNLOADS: usize = 16;
/// Most offers and downloads from one peer at once, so one peer cannot take every slot.
const MAX_PER_PEER: usize = 4;
/// Finished transfers remembered, to answer a sender that re-offers after missing our "done".
const COMPLETED_MEMORY: usize = 1024;
/// A download with no connected source for this long gives up (its partial file stays on disk
/// and resumes when the content is offered again).
const ORPHAN_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(600);

/// What the transfer engine wants done.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send a message to a peer (dropped if it has no link: the engine retries on reconnect).
    Send {
        /// Recipient.
        to: PeerId,
        /// Message.
        msg: Message,
    },
    /// An output for the driver.
    Output(Output),
    /// The peer broke the transfer protocol; close its link.
    Misbehaved {
        /// Who.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
}

/// A file as the driver describes it for an offer.
#[derive(Debug, Clone)]
pub struct OfferSpec {
    /// Name to show.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Chunk size.
    pub chunk_size: u32,
    /// Whole-file hash.
    pub file: FileHash,
    /// Per-chunk hashes.
    pub chunk_hashes: Vec<[u8; 32]>,
}

/// Number of chunks of a file of `size` bytes.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

/// BLAKE3 over the concatenated chunk hashes: what an offer's `hash_list_hash` holds.
pub fn hash_list_hash(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for c in hashes {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

/// Every transfer of one node.
#[derive(Debug)]
pub struct Transfers {
    window: usize,
    outgoing: BTreeMap<TransferId, Outgoing>,
    /// Offers received and not yet answered, keyed by sender and transfer.
    pending: BTreeMap<(PeerId, TransferId), Offer>,
    downloads: BTreeMap<FileHash, Download>,
    /// Which download each (source, transfer) feeds.
    sources: BTreeMap<(PeerId, TransferId), FileHash>,
    connected: BTreeSet<PeerId>,
    completed: BoundedSet<(PeerId, TransferId)>,
}

impl Transfers {
    /// An engine granting `window` chunks of credit per source.
    pub fn new(window: usize) -> Self {
        Transfers {
            window: window.max(1),
            outgoing: BTreeMap::new(),
            pending: BTreeMap::new(),
            downloads: BTreeMap::new(),
            sources: BTreeMap::new(),
            connected: BTreeSet::new(),
            completed: BoundedSet::new(COMPLETED_MEMORY),
        }
    }

    /// Starts offering a file to `to`.
    pub fn offer(
        &mut self,
        transfer_id: TransferId,
        to: PeerId,
        spec: OfferSpec,
        connected: bool,
    ) -> Result<Vec<Action>, CommandError> {
        let outgoing = Outgoing::new(transfer_id, to, spec)?;
        let mut actions = Vec::new();
        if connected {
            actions.push(Action::Send { to, msg: Message::Offer(outgoing.offer.clone()) });
        }
        self.outgoing.insert(transfer_id, outgoing);
        Ok(actions)
    }

    /// Whether a transfer with `peer` is under way (an offer out, one pending, or a download it
    /// feeds): its link is worth keeping.
    pub fn involves(&self, peer: &PeerId) -> bool {
        self.outgoing.values().any(|o| o.to == *peer && !o.complete)
            || self.pending.keys().any(|(p, _)| p == peer)
            || self.sources.keys().any(|(p, _)| p == peer)
    }

    /// A link to `peer` is up: re-offer what it has not finished, and resume downloads it feeds.
    pub fn on_peer_connected(&mut self, now: Instant, peer: PeerId) -> Vec<Action> {
        self.connected.insert(peer);
        let mut actions: Vec<Action> = self
            .outgoing
            .values()
            .filter(|o| o.to == peer && !o.complete)
            .map(|o| Action::Send { to: peer, msg: Message::Offer(o.offer.clone()) })
            .collect();
        let files: Vec<FileHash> =
            self.downloads.iter().filter(|(_, d)| d.has_source(&peer)).map(|(f, _)| *f).collect();
        for f in files {
            if let Some(d) = self.downloads.get_mut(&f) {
                d.pump(now, &self.connected, self.window, &mut actions);
            }
        }
        actions
    }

    /// The last link to `peer` is gone: its in-flight requests go back to the pool.
    pub fn on_peer_disconnected(&mut self, now: Instant, peer: PeerId) -> Vec<Action> {
        self.connected.remove(&peer);
        let mut actions = Vec::new();
        for o in self.outgoing.values_mut() {
            o.receiver_lost(now, &peer, &mut actions);
        }
        for d in self.downloads.values_mut() {
            d.source_lost(&peer);
            d.pump(now, &self.connected, self.window, &mut actions);
        }
        actions
    }

    /// Accepts a pending offer, with `have` marking chunks already on disk.
    pub fn accept(
        &mut self,
        now: Instant,
        from: PeerId,
        transfer_id: TransferId,
        have: Vec<bool>,
    ) -> Result<Vec<Action>, CommandError> {
        let offer = self
            .pending
            .remove(&(from, transfer_id))
            .ok_or_else(|| CommandError::NoSuchOffer(transfer_id.to_string()))?;
        let file = FileHash(offer.file_hash);
        let mut actions = Vec::new();
        match self.downloads.get_mut(&file) {
            Some(d) => d.add_source(from, transfer_id),
            None => {
                let d = Download::new(from, &offer, have)?;
                self.downloads.insert(file, d);
            }
        }
        self.sources.insert((from, transfer_id), file);
        if let Some(d) = self.downloads.get_mut(&file) {
            d.pump(now, &self.connected, self.window, &mut actions);
            d.finish_if_complete(&mut actions);
        }
        Ok(actions)
    }

    /// Declines a pending offer.
    pub fn decline(
        &mut self,
        from: PeerId,
        transfer_id: TransferId,
        reason: String,
    ) -> Result<Vec<Action>, CommandError> {
        self.pending.remove(&(from, transfer_id)).ok_or_else(|| CommandError::NoSuchOffer(transfer_id.to_string()))?;
        Ok(vec![Action::Send { to: from, msg: Message::TransferCancel { transfer_id, reason } }])
    }

    /// A transfer message from `from`.
    pub fn on_message(&mut self, now: Instant, from: PeerId, msg: Message) -> Vec<Action> {
        let mut actions = Vec::new();
        match msg {
            Message::Offer(offer) => self.on_offer(now, from, offer, &mut actions),
            Message::HashesRequest { transfer_id, start } => match self.outgoing.get_mut(&transfer_id) {
                Some(o) if o.to == from => {
                    if o.page_allowed(now) {
                        actions.push(o.hashes_page(start));
                    }
                }
                _ => actions.push(cancel(from, transfer_id, "unknown transfer")),
            },
            Message::Want { transfer_id, chunks } => match self.outgoing.get_mut(&transfer_id) {
                Some(o) if o.to == from => o.on_want(from, &chunks, &mut actions),
                _ => actions.push(cancel(from, transfer_id, "unknown transfer")),
            },
            Message::Hashes { transfer_id, start, hashes } => {
                let (connected, window) = (&self.connected, self.window);
                if let Some(d) = download_for(&self.sources, &mut self.downloads, from, transfer_id) {
                    d.on_hashes(from, start, &hashes, &mut actions);
                    d.pump(now, connected, window, &mut actions);
                    d.finish_if_complete(&mut actions);
                }
            }
            Message::Chunk { transfer_id, index, data } => {
                let (connected, window) = (&self.connected, self.window);
                if let Some(d) = download_for(&self.sources, &mut self.downloads, from, transfer_id) {
                    d.on_chunk(from, index, data, &mut actions);
                    d.pump(now, connected, window, &mut actions);
                    d.finish_if_complete(&mut actions);
                }
            }
            Message::TransferComplete { transfer_id } => {
                if let Some(o) = self.outgoing.get_mut(&transfer_id) {
                    if o.to == from {
                        o.complete = true;
                        actions.push(o.progress_event());
                        self.outgoing.remove(&transfer_id);
                    }
                }
            }
            Message::TransferCancel { transfer_id, reason } => {
                self.on_cancel(now, from, transfer_id, reason, &mut actions)
            }
            _ => {}
        }
        actions
    }

    fn on_offer(&mut self, now: Instant, from: PeerId, offer: Offer, actions: &mut Vec<Action>) {
        let key = (from, offer.transfer_id);
        let file = FileHash(offer.file_hash);
        if self.completed.contains(&key) {
            // We finished this one while the sender was away: tell it, do not fetch it again.
            actions.push(Action::Send { to: from, msg: Message::TransferComplete { transfer_id: offer.transfer_id } });
            return;
        }
        if let Some(d) = self.downloads.get_mut(&file) {
            // A re-offer after a reconnect, or another holder of content we are fetching: one
            // more source, if it describes the content the same way.
            if !d.matches(&offer) {
                actions.push(cancel(from, offer.transfer_id, "conflicting description of the same file"));
                return;
            }
            // One entry per peer and download: a peer re-offering with new ids replaces its old one.
            self.sources.retain(|(p, _), f| !(*p == from && *f == file));
            self.sources.insert(key, file);
            if d.source_transfer(&from).is_some_and(|old| old != offer.transfer_id) {
                // A restarted sender (a reloaded page) forgot the old id: what we asked under it
                // will never be answered, so ask again now rather than after the request timeout.
                d.remove_source(&from);
            }
            d.add_source(from, offer.transfer_id);
            d.pump(now, &self.connected, self.window, actions);
            return;
        }
        if offer.size > MAX_FILE_SIZE || chunk_count(offer.size, offer.chunk_size) > MAX_CHUNKS {
            actions.push(cancel(from, offer.transfer_id, "file too large or chunks too small"));
            return;
        }
        let from_peer = self.pending.keys().filter(|(p, _)| *p == from).count()
            + self.downloads.values().filter(|d| d.has_source(&from)).count();
        if self.pending.len() >= MAX_PENDING_OFFERS
            || self.downloads.len() >= MAX_DOWNLOADS
            || from_peer >= MAX_PER_PEER
        {
            actions.push(cancel(from, offer.transfer_id, "receiver busy"));
            return;
        }
        actions.push(Action::Output(Output::Event(Event::TransferOffered {
            transfer_id: offer.transfer_id,
            from,
            name: offer.name.clone(),
            size: offer.size,
            chunk_size: offer.chunk_size,
            file,
        })));
        self.pending.insert(key, offer);
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        from: PeerId,
        transfer_id: TransferId,
        reason: String,
        actions: &mut Vec<Action>,
    ) {
        if self.pending.remove(&(from, transfer_id)).is_some() {
            return;
        }
        if let Some(o) = self.outgoing.get(&transfer_id) {
            if o.to == from {
                self.outgoing.remove(&transfer_id);
                actions.push(Action::Output(Output::Event(Event::TransferFailed {
                    transfer_id,
                    reason: format!("receiver cancelled: {reason}"),
                })));
                return;
            }
        }
        if let Some(file) = self.sources.remove(&(from, transfer_id)) {
            let empty = match self.downloads.get_mut(&file) {
                Some(d) => {
                    d.remove_source(&from);
                    d.pump(now, &self.connected, self.window, actions);
                    d.source_count() == 0
                }
                None => false,
            };
            if empty {
                if let Some(d) = self.downloads.remove(&file) {
                    actions.push(d.failed_event(format!("sender cancelled: {reason}")));
                }
            }
        }
    }

    /// A chunk the driver read for one of our offers.
    pub fn on_chunk_read(
        &mut self,
        now: Instant,
        file: FileHash,
        index: u32,
        result: Result<Vec<u8>, String>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let ids: Vec<TransferId> =
            self.outgoing.iter().filter(|(_, o)| FileHash(o.offer.file_hash) == file).map(|(id, _)| *id).collect();
        for id in ids {
            let failed = match (self.outgoing.get_mut(&id), &result) {
                (Some(o), Ok(data)) => {
                    o.on_read(now, index, data, &mut actions);
                    false
                }
                (Some(o), Err(e)) => {
                    let to = o.to;
                    actions.push(cancel(to, id, "sender cannot read the file"));
                    actions.push(Action::Output(Output::Event(Event::TransferFailed {
                        transfer_id: id,
                        reason: format!("reading the file failed: {e}"),
                    })));
                    true
                }
                _ => false,
            };
            if failed {
                self.outgoing.remove(&id);
            }
        }
        actions
    }

    /// The driver wrote a chunk of a download.
    pub fn on_chunk_written(&mut self, now: Instant, file: FileHash, index: u32) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(d) = self.downloads.get_mut(&file) {
            d.on_written(now, index, &mut actions);
            d.pump(now, &self.connected, self.window, &mut actions);
            d.finish_if_complete(&mut actions);
        }
        actions
    }

    /// The driver finished (or failed) the final check and rename.
    pub fn on_finalized(&mut self, file: FileHash, result: Result<String, String>) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(d) = self.downloads.remove(&file) {
            self.sources.retain(|_, f| *f != file);
            if result.is_ok() {
                for source in d.sources() {
                    self.completed.insert(source);
                }
            }
            d.finalized(result, &mut actions);
        }
        actions
    }

    /// Writing failed: the download fails and its sources are told.
    pub fn on_storage_failed(&mut self, file: FileHash, reason: String) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(d) = self.downloads.remove(&file) {
            self.sources.retain(|_, f| *f != file);
            d.cancel_all(&reason, &mut actions);
            actions.push(d.failed_event(format!("storage: {reason}")));
        }
        actions
    }

    /// Timers: re-requests overdue chunks and reports progress.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for d in self.downloads.values_mut() {
            d.expire_requests(now);
            d.pump(now, &self.connected, self.window, &mut actions);
            d.progress(now, true, &mut actions);
        }
        let orphans: Vec<FileHash> = self
            .downloads
            .iter_mut()
            .filter_map(|(f, d)| d.orphaned_for(now, &self.connected).filter(|t| *t >= ORPHAN_TIMEOUT).map(|_| *f))
            .collect();
        for f in orphans {
            if let Some(d) = self.downloads.remove(&f) {
                self.sources.retain(|_, file| *file != f);
                actions.push(d.failed_event(
                    "no source for 10 minutes; the partial file is kept and resumes when offered again".into(),
                ));
            }
        }
        for o in self.outgoing.values_mut() {
            o.progress(now, &mut actions);
        }
        actions
    }
}

fn download_for<'a>(
    sources: &BTreeMap<(PeerId, TransferId), FileHash>,
    downloads: &'a mut BTreeMap<FileHash, Download>,
    from: PeerId,
    transfer_id: TransferId,
) -> Option<&'a mut Download> {
    downloads.get_mut(sources.get(&(from, transfer_id))?)
}

fn cancel(to: PeerId, transfer_id: TransferId, reason: &str) -> Action {
    Action::Send { to, msg: Message::TransferCancel { transfer_id, reason: reason.to_owned() } }
}

#[cfg(test)]
mod tests;

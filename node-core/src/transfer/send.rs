//! The sending side of one offer: answers hash-list and chunk requests, within the credit the
//! receiver granted.

use super::{chunk_count, hash_list_hash, Action, OfferSpec, MAX_CHUNKS, MAX_FILE_SIZE};
use crate::identity::PeerId;
use crate::interface::{CommandError, Event, FileHash, Output};
use crate::time::Instant;
use crate::wire::{Message, Offer, TransferId, HASHES_PER_PAGE, MAX_CHUNK_SIZE, MAX_FILE_NAME_LEN, MAX_WANT};
use core::time::Duration;
use std::collections::BTreeSet;

/// Most chunk requests a receiver may have outstanding with us; more are ignored. Honest
/// receivers stay under their window (16); this bounds what a dishonest one can queue (8 MiB).
const MAX_OUTSTANDING: usize = MAX_WANT / 2;
/// Least time between two progress events.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(super) struct Outgoing {
    pub to: PeerId,
    pub offer: Offer,
    hashes: Vec<[u8; 32]>,
    /// Chunk indices requested and not yet sent.
    requested: BTreeSet<u32>,
    sent: u64,
    /// Hash pages served in the current minute, and when that minute began: a page is 512 KiB
    /// for a 17-byte request, so a receiver gets each page about twice a minute, no more.
    page_budget: (Option<Instant>, u32),
    pub complete: bool,
    last_progress: Option<(Instant, u64)>,
}

impl Outgoing {
    pub fn new(transfer_id: TransferId, to: PeerId, spec: OfferSpec) -> Result<Self, CommandError> {
        if spec.chunk_size == 0 || spec.chunk_size > MAX_CHUNK_SIZE {
            return Err(CommandError::InvalidFile("chunk size out of range"));
        }
        if spec.size > MAX_FILE_SIZE || chunk_count(spec.size, spec.chunk_size) > MAX_CHUNKS {
            return Err(CommandError::InvalidFile("file larger than 64 GiB, or chunks too small for its size"));
        }
        if chunk_count(spec.size, spec.chunk_size) != spec.chunk_hashes.len() as u64 {
            return Err(CommandError::InvalidFile("chunk hash count does not match the size"));
        }
        if spec.name.is_empty() || spec.name.len() > MAX_FILE_NAME_LEN {
            return Err(CommandError::InvalidFile("file name empty or longer than 255 bytes"));
        }
        let offer = Offer {
            transfer_id,
            name: spec.name,
            size: spec.size,
            chunk_size: spec.chunk_size,
            file_hash: spec.file.0,
            hash_list_hash: hash_list_hash(&spec.chunk_hashes),
        };
        Ok(Outgoing {
            to,
            offer,
            hashes: spec.chunk_hashes,
            requested: BTreeSet::new(),
            sent: 0,
            page_budget: (None, 0),
            complete: false,
            last_progress: None,
        })
    }

    /// Whether another hash page may be served now (see `page_budget`).
    pub fn page_allowed(&mut self, now: Instant) -> bool {
        let pages = self.hashes.len().div_ceil(HASHES_PER_PAGE as usize).max(1) as u32;
        let (since, used) = &mut self.page_budget;
        if since.is_none_or(|t| now - t >= Duration::from_secs(60)) {
            *since = Some(now);
            *used = 0;
        }
        *used += 1;
        *used <= 2 * pages + 2
    }

    pub fn hashes_page(&self, start: u32) -> Action {
        let start_idx = (start as usize).min(self.hashes.len());
        let end = (start_idx + HASHES_PER_PAGE as usize).min(self.hashes.len());
        let mut bytes = Vec::with_capacity((end - start_idx) * 32);
        for h in &self.hashes[start_idx..end] {
            bytes.extend_from_slice(h);
        }
        Action::Send {
            to: self.to,
            msg: Message::Hashes { transfer_id: self.offer.transfer_id, start: start_idx as u32, hashes: bytes },
        }
    }

    pub fn on_want(&mut self, _from: PeerId, chunks: &[u32], actions: &mut Vec<Action>) {
        let count = self.hashes.len() as u64;
        for &index in chunks {
            if u64::from(index) >= count || self.requested.len() >= MAX_OUTSTANDING {
                continue;
            }
            if self.requested.insert(index) {
                let offset = u64::from(index) * u64::from(self.offer.chunk_size);
                let len = (self.offer.size - offset).min(u64::from(self.offer.chunk_size)) as u32;
                actions.push(Action::Output(Output::ReadChunk {
                    file: FileHash(self.offer.file_hash),
                    index,
                    offset,
                    len,
                }));
            }
        }
    }

    pub fn on_read(&mut self, now: Instant, index: u32, data: &[u8], actions: &mut Vec<Action>) {
        if !self.requested.remove(&index) {
            return;
        }
        self.sent += data.len() as u64;
        actions.push(Action::Send {
            to: self.to,
            msg: Message::Chunk { transfer_id: self.offer.transfer_id, index, data: data.to_vec() },
        });
        self.progress(now, actions);
    }

    /// The receiver's link is gone: drop its requests and report where sending paused.
    pub fn receiver_lost(&mut self, now: Instant, peer: &PeerId, actions: &mut Vec<Action>) {
        if *peer == self.to {
            self.requested.clear();
            self.last_progress = Some((now, self.sent));
            actions.push(self.progress_event());
        }
    }

    pub fn progress_event(&self) -> Action {
        Action::Output(Output::Event(Event::TransferSent {
            transfer_id: self.offer.transfer_id,
            to: self.to,
            sent: self.sent,
            total: self.offer.size,
            complete: self.complete,
        }))
    }

    pub fn progress(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let due = match self.last_progress {
            None => self.sent > 0,
            Some((t, sent)) => sent != self.sent && now - t >= PROGRESS_INTERVAL,
        };
        if due {
            self.last_progress = Some((now, self.sent));
            actions.push(self.progress_event());
        }
    }
}

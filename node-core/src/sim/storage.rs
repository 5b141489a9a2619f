//! In-memory "disk" for simulated nodes: files they offer, and downloads with their chunk maps
//! (which survive a simulated restart, like a `.part` file and its state file would).

use crate::interface::FileHash;
use crate::transfer::{chunk_count, OfferSpec};
use std::collections::BTreeMap;

/// A partial download as it would sit on disk.
#[derive(Debug, Clone)]
pub struct PartialFile {
    /// Bytes written so far (sized to the whole file).
    pub data: Vec<u8>,
    /// Which chunks are written.
    pub have: Vec<bool>,
}

/// One simulated node's disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    /// Files this node can serve, by content hash.
    pub files: BTreeMap<FileHash, Vec<u8>>,
    /// Downloads in progress.
    pub partial: BTreeMap<FileHash, PartialFile>,
    /// Finished downloads: (name, content).
    pub finished: Vec<(String, Vec<u8>)>,
}

impl SimStorage {
    /// Stores `data` as a servable file and describes it for an offer.
    pub fn add_file(&mut self, name: &str, data: Vec<u8>, chunk_size: u32) -> OfferSpec {
        let spec = describe(name, &data, chunk_size);
        self.files.insert(spec.file, data);
        spec
    }

    /// The chunk map to resume a download with, if any of it is on "disk".
    pub fn have(&self, file: &FileHash, size: u64, chunk_size: u32) -> Vec<bool> {
        match self.partial.get(file) {
            Some(p) if p.have.len() as u64 == chunk_count(size, chunk_size) => p.have.clone(),
            _ => Vec::new(),
        }
    }
}

/// Hashes `data` the way a driver does before offering it.
pub fn describe(name: &str, data: &[u8], chunk_size: u32) -> OfferSpec {
    let chunk_hashes = data.chunks(chunk_size as usize).map(|c| *blake3::hash(c).as_bytes()).collect();
    OfferSpec {
        name: name.to_owned(),
        size: data.len() as u64,
        chunk_size,
        file: FileHash(*blake3::hash(data).as_bytes()),
        chunk_hashes,
    }
}

//! Files on disk: hashing for offers, downloads as `<name>.part` plus a state file, and the
//! verified, non-overwriting finish.

use node_core::transfer::chunk_count;
use node_core::FileHash;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Longest file name we create, in bytes.
const MAX_SAFE_NAME: usize = 200;

/// Reduces a name from a peer to one safe path component: no separators, no `..`, no control
/// characters, no leading dots, never empty.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    let mut out = String::new();
    for c in trimmed.chars() {
        if out.len() + c.len_utf8() > MAX_SAFE_NAME {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "file".to_owned()
    } else {
        out
    }
}

/// A file described for an offer.
#[derive(Debug, Clone)]
pub struct HashedFile {
    /// Its size.
    pub size: u64,
    /// BLAKE3 of the whole file.
    pub file: FileHash,
    /// BLAKE3 of each chunk.
    pub chunk_hashes: Vec<[u8; 32]>,
}

/// Reads `path` once, hashing the whole file and each chunk (blocking).
pub fn hash_file(path: &Path, chunk_size: u32) -> io::Result<HashedFile> {
    let mut f = File::open(path)?;
    let mut whole = blake3::Hasher::new();
    let mut chunk_hashes = Vec::new();
    let mut buf = vec![0u8; chunk_size as usize];
    let mut size = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = f.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        whole.update(&buf[..filled]);
        chunk_hashes.push(*blake3::hash(&buf[..filled]).as_bytes());
        size += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    Ok(HashedFile { size, file: FileHash(*whole.finalize().as_bytes()), chunk_hashes })
}

/// What a state file records about a `.part` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartState {
    file_hash: String,
    size: u64,
    chunk_size: u32,
    name: String,
    /// One char per chunk: '1' written, '0' not.
    have: String,
}

/// A download in progress on disk.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    part_path: PathBuf,
    state_path: PathBuf,
    state: PartState,
    dir: PathBuf,
    dirty: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PartFile {
    /// Opens (or resumes) the download of `file` into `dir`. Returns the chunk map to resume from.
    pub fn open(
        dir: &Path,
        file: FileHash,
        name: &str,
        size: u64,
        chunk_size: u32,
    ) -> io::Result<(PartFile, Vec<bool>)> {
        fs::create_dir_all(dir)?;
        let safe = safe_file_name(name);
        let hash_hex = hex(&file.0);
        let chunks = chunk_count(size, chunk_size) as usize;
        // `<name>.part` unless another download already holds that name.
        for candidate in [format!("{safe}.part"), format!("{safe}-{}.part", &hash_hex[..8])] {
            let part_path = dir.join(&candidate);
            let state_path = dir.join(format!("{candidate}.weft"));
            let existing: Option<PartState> = fs::read(&state_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
            let resumable = existing.as_ref().is_some_and(|s| {
                s.file_hash == hash_hex && s.size == size && s.chunk_size == chunk_size && s.have.len() == chunks
            });
            if !resumable && (part_path.exists() || state_path.exists()) && existing.is_some() {
                continue; // someone else's partial file
            }
            let f = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&part_path)?;
            let mut have = vec![false; chunks];
            let state = match existing.filter(|_| resumable) {
                Some(s) => {
                    for (h, c) in have.iter_mut().zip(s.have.chars()) {
                        *h = c == '1';
                    }
                    s
                }
                None => {
                    f.set_len(size)?;
                    PartState {
                        file_hash: hash_hex.clone(),
                        size,
                        chunk_size,
                        name: safe.clone(),
                        have: "0".repeat(chunks),
                    }
                }
            };
            let mut pf = PartFile { file: f, part_path, state_path, state, dir: dir.to_owned(), dirty: true };
            pf.save_state()?;
            return Ok((pf, have));
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free .part name"))
    }

    /// Writes a verified chunk and marks it (the mark reaches disk at the next [`save_state`](Self::save_state)).
    pub fn write_chunk(&mut self, index: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        let i = index as usize;
        if i < self.state.have.len() {
            self.state.have.replace_range(i..i + 1, "1");
            self.dirty = true;
        }
        Ok(())
    }

    /// Persists the chunk map, after the data it describes (so it never claims unwritten chunks).
    pub fn save_state(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.sync_data()?;
        let tmp = self.state_path.with_extension("weft.tmp");
        fs::write(&tmp, serde_json::to_vec(&self.state).map_err(io::Error::other)?)?;
        fs::rename(&tmp, &self.state_path)?;
        self.dirty = false;
        Ok(())
    }

    /// Checks the whole-file hash and moves the file to its final name without overwriting
    /// anything; returns the final path.
    pub fn finish(self, expected: FileHash) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        let mut f = File::open(&self.part_path)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if *hasher.finalize().as_bytes() != expected.0 {
            // Its chunk map would resume a later download into the same garbage: start over.
            let _ = fs::remove_file(&self.part_path);
            let _ = fs::remove_file(&self.state_path);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "whole-file hash does not match the offer"));
        }
        let name = self.state.name.clone();
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
            _ => (name.clone(), String::new()),
        };
        for n in 0..1000 {
            let candidate = if n == 0 { name.clone() } else { format!("{stem} ({n}){ext}") };
            let target = self.dir.join(candidate);
            // A hard link fails if the target exists: no check-then-rename race.
            match fs::hard_link(&self.part_path, &target) {
                Ok(()) => {
                    fs::remove_file(&self.part_path)?;
                    let _ = fs::remove_file(&self.state_path);
                    return Ok(target);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free file name"))
    }
}

/// Reads `len` bytes at `offset` (blocking).
pub fn read_chunk(file: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_peers_become_one_safe_component() {
        assert_eq!(safe_file_name("../../etc/x"), "x");
        assert_eq!(safe_file_name("..\\..\\windows\\y.txt"), "y.txt");
        assert_eq!(safe_file_name(".."), "file");
        assert_eq!(safe_file_name(""), "file");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name("a\u{0}b\nc"), "abc");
        assert_eq!(safe_file_name("/"), "file");
        assert!(safe_file_name(&"é".repeat(300)).len() <= MAX_SAFE_NAME);
    }

    #[test]
    fn a_part_file_resumes_and_finishes_without_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let file = FileHash(*blake3::hash(&data).as_bytes());
        let (mut pf, have) = PartFile::open(dir.path(), file, "../d.bin", data.len() as u64, 4096).unwrap();
        assert_eq!(have, vec![false; 3]);
        pf.write_chunk(0, 0, &data[..4096]).unwrap();
        pf.save_state().unwrap();
        drop(pf);
        let (mut pf, have) = PartFile::open(dir.path(), file, "../d.bin", data.len() as u64, 4096).unwrap();
        assert_eq!(have, vec![true, false, false], "resumes from the state file");
        pf.write_chunk(1, 4096, &data[4096..8192]).unwrap();
        pf.write_chunk(2, 8192, &data[8192..]).unwrap();
        fs::write(dir.path().join("d.bin"), b"existing").unwrap();
        let path = pf.finish(file).unwrap();
        assert_eq!(path, dir.path().join("d (1).bin"));
        assert_eq!(fs::read(&path).unwrap(), data);
        assert_eq!(fs::read(dir.path().join("d.bin")).unwrap(), b"existing");
        assert!(!dir.path().join("d.bin.part").exists());
    }

    #[test]
    fn a_wrong_whole_file_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut pf, _) = PartFile::open(dir.path(), FileHash([7; 32]), "x", 3, 4096).unwrap();
        pf.write_chunk(0, 0, b"abc").unwrap();
        assert!(pf.finish(FileHash([7; 32])).is_err());
        assert!(!dir.path().join("x").exists());
        assert!(!dir.path().join("x.part").exists() && !dir.path().join("x.part.weft").exists(), "no poisoned resume");
    }
}

//! Trust on first use for bootstrap servers: `<data-dir>/bootstrap-pins.json` maps each server
//! URL to the key it showed the first time. A later key that differs is refused (a hijacked DNS
//! name or a replaced server), unless the user removes the pin or gives the key by flag.

use node_core::PeerId;
use std::collections::BTreeMap;
use std::path::PathBuf;

const BY_FLAG: &str = "by flag";
const ON_FIRST_CONTACT: &str = "on first contact";

fn fix_for(how: &str) -> &'static str {
    if how == BY_FLAG {
        "check the --bootstrap-key you gave"
    } else {
        "remove its line from <data-dir>/bootstrap-pins.json"
    }
}

/// Why a server key is refused, or the pins cannot be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The server shows another key than the pinned (or required) one.
    #[error(
        "{url} presents key {got}, but {pinned} is pinned ({how}); if the server's key really changed, {}",
        fix_for(how)
    )]
    Mismatch {
        /// The server.
        url: String,
        /// What it showed.
        got: PeerId,
        /// What we expect.
        pinned: PeerId,
        /// Where the expectation comes from.
        how: &'static str,
    },
    /// The pin file is unreadable or unwritable.
    #[error("bootstrap pins at {path}: {message}")]
    Storage {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// The pins of one node.
pub struct Pins {
    path: PathBuf,
    /// A key the user gave by flag: required, never pinned to disk.
    required: Option<PeerId>,
    /// Held from reading the file to replacing it: the presence task and a name claim may
    /// meet a new server at the same moment, and two writers sharing one temporary file lose
    /// one rename ("No such file or directory").
    writing: std::sync::Mutex<()>,
}

impl Pins {
    /// Pins kept in `<data_dir>/bootstrap-pins.json`; `required` overrides them.
    pub fn new(data_dir: &std::path::Path, required: Option<PeerId>) -> Self {
        Pins { path: data_dir.join("bootstrap-pins.json"), required, writing: std::sync::Mutex::new(()) }
    }

    fn load(&self) -> Result<BTreeMap<String, PeerId>, PinError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.storage(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.storage(e)),
        }
    }

    fn storage(&self, e: impl std::fmt::Display) -> PinError {
        PinError::Storage { path: self.path.display().to_string(), message: e.to_string() }
    }

    /// The key required for `url`, or pinned for it, without asking the server (`None` if it
    /// was never reached and no key was given; an unreadable pin file counts as no pin).
    pub fn known(&self, url: &str) -> Option<PeerId> {
        self.required.or_else(|| self.load().ok()?.get(url).copied())
    }

    /// Accepts `got` for `url` if it matches the required or pinned key, pinning it if `url` is new.
    pub fn check_or_pin(&self, url: &str, got: PeerId) -> Result<PeerId, PinError> {
        if let Some(required) = self.required {
            if required != got {
                return Err(PinError::Mismatch { url: url.into(), got, pinned: required, how: BY_FLAG });
            }
            return Ok(got);
        }
        // A panic while holding the lock leaves nothing half-done that matters: the file is
        // only ever replaced whole.
        let _writing = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut pins = self.load()?;
        match pins.get(url) {
            Some(pinned) if *pinned == got => Ok(got),
            Some(pinned) => Err(PinError::Mismatch { url: url.into(), got, pinned: *pinned, how: ON_FIRST_CONTACT }),
            None => {
                pins.insert(url.to_owned(), got);
                let tmp = self.path.with_extension("json.tmp");
                let json = serde_json::to_vec_pretty(&pins).map_err(|e| self.storage(e))?;
                std::fs::write(&tmp, json)
                    .and_then(|()| std::fs::rename(&tmp, &self.path))
                    .map_err(|e| self.storage(e))?;
                tracing::info!("pinned bootstrap server {url} to key {got}");
                Ok(got)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_pinning_at_once_all_succeed_and_no_pin_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let a = node_core::identity::Keypair::from_secret([1; 32]).peer_id();
        let pins = Pins::new(dir.path(), None);
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (pins, start) = (&pins, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..25 {
                        assert_eq!(pins.check_or_pin(&format!("http://s{t}-{i}"), a).unwrap(), a);
                    }
                });
            }
        });
        for t in 0..8 {
            for i in 0..25 {
                assert_eq!(pins.known(&format!("http://s{t}-{i}")), Some(a), "pin {t}-{i} kept");
            }
        }
    }

    #[test]
    fn first_key_is_pinned_and_a_different_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = node_core::identity::Keypair::from_secret([1; 32]).peer_id();
        let b = node_core::identity::Keypair::from_secret([2; 32]).peer_id();
        let pins = Pins::new(dir.path(), None);
        assert_eq!(pins.check_or_pin("http://s", a).unwrap(), a);
        assert_eq!(pins.check_or_pin("http://s", a).unwrap(), a);
        assert!(matches!(pins.check_or_pin("http://s", b), Err(PinError::Mismatch { .. })));
        assert_eq!(pins.check_or_pin("http://other", b).unwrap(), b, "pins are per server");
        let required = Pins::new(dir.path(), Some(b));
        assert!(matches!(required.check_or_pin("http://s2", a), Err(PinError::Mismatch { how: "by flag", .. })));
    }
}

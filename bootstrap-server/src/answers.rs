//! Signed name answers, kept ready to send: a lookup that hits costs neither a database read nor
//! an Ed25519 signature. Bounded (least recently used entries go first).
//!
//! Consistency: every write to a name goes through the server's write lock and updates or drops
//! its entry before the lock is released, and a lookup that misses fills the entry under the same
//! lock, so a stale answer can never replace a newer one. Correct for one server process per
//! database (the only deployment this build supports).

use axum::body::Bytes;
use node_core::names::{Name, NameAnswer};
use std::sync::Arc;

/// How many answers are kept.
pub const CAPACITY: usize = 100_000;

/// An answer as sent: its JSON and until when it is good.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The answer's JSON.
    pub json: Bytes,
    /// When the name expires.
    pub expires_unix_ms: u64,
}

/// The cache.
pub struct Answers {
    cache: quick_cache::sync::Cache<Name, Arc<Cached>>,
}

impl Default for Answers {
    fn default() -> Self {
        Answers { cache: quick_cache::sync::Cache::new(CAPACITY) }
    }
}

impl Answers {
    /// The answer for `name` if cached and not expired at `now_ms`.
    pub fn get(&self, name: &Name, now_ms: u64) -> Option<Arc<Cached>> {
        self.cache.get(name).filter(|c| c.expires_unix_ms > now_ms)
    }

    /// Caches `answer` (call with the write lock held).
    pub fn put(&self, answer: &NameAnswer) -> Arc<Cached> {
        let json = Bytes::from(serde_json::to_vec(answer).unwrap_or_default());
        let cached = Arc::new(Cached { json, expires_unix_ms: answer.expires_unix_ms });
        self.cache.insert(answer.record.record.name.clone(), cached.clone());
        cached
    }

    /// Forgets `name` (call with the write lock held).
    pub fn forget(&self, name: &Name) {
        self.cache.remove(name);
    }
}

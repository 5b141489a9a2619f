//! The driver's clock: node-core's [`Instant`] is "Unix time at start plus monotonic time since".

use node_core::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Converts between the host's monotonic clock and node-core time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: tokio::time::Instant,
    unix_at_start_us: u64,
}

impl Clock {
    /// A clock anchored now.
    pub fn new() -> Self {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { start: tokio::time::Instant::now(), unix_at_start_us: unix.as_micros() as u64 }
    }

    /// The current node-core time.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.unix_at_start_us + self.start.elapsed().as_micros() as u64)
    }

    /// The tokio instant at which node-core time `t` arrives.
    pub fn deadline(&self, t: Instant) -> tokio::time::Instant {
        let offset = t.as_micros().saturating_sub(self.unix_at_start_us);
        self.start + Duration::from_micros(offset)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

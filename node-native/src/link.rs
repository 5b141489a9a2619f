//! The actor's handle on a running link, whatever carries it (TCP+Noise, a WebRTC data channel):
//! a bounded queue of outgoing frames plus the reader and writer tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Frames queued for one link before the link counts as stuck and is closed.
pub const LINK_QUEUE: usize = 512;
/// Bytes queued for one link before the link counts as stuck and is closed (enough for a
/// transfer window of chunks from several downloads at once).
pub const LINK_QUEUE_BYTES: usize = 32 << 20;
/// How long a closed link's writer may keep flushing.
const WRITER_GRACE: Duration = Duration::from_secs(5);

/// The actor's handle on a running link.
pub struct LinkTasks {
    frames: mpsc::Sender<Vec<u8>>,
    /// Bytes queued and not yet written: the queue is bounded in bytes, not only in frames.
    queued: Arc<AtomicUsize>,
    reader: AbortHandle,
    writer: AbortHandle,
}

impl LinkTasks {
    /// Wraps a link's tasks: `frames` feeds the writer, which subtracts what it wrote from `queued`.
    pub fn new(
        frames: mpsc::Sender<Vec<u8>>,
        queued: Arc<AtomicUsize>,
        reader: AbortHandle,
        writer: AbortHandle,
    ) -> Self {
        LinkTasks { frames, queued, reader, writer }
    }

    /// Queues a frame; false if the link is stuck (its peer stopped reading) or gone.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        let len = frame.len();
        if self.queued.load(Ordering::Relaxed) + len > LINK_QUEUE_BYTES {
            return false;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.frames.try_send(frame).is_ok()
    }
}

impl Drop for LinkTasks {
    fn drop(&mut self) {
        self.reader.abort();
        // The writer flushes what is queued (a Goodbye, say), then closes; a peer that stopped
        // reading would block it forever, so it is cut off after a grace period.
        let writer = self.writer.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(WRITER_GRACE).await;
                writer.abort();
            });
        } else {
            writer.abort();
        }
    }
}

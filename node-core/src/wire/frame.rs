//! Length-prefixed framing for stream links: `u32` big-endian length, then that many bytes.
//!
//! The decoder checks each length prefix against the cap the moment its four bytes arrive, before
//! reserving anything, so a peer that announces a 4 GiB frame costs us four bytes, not four gigabytes.

/// Default largest frame a link accepts (DESIGN: 1 MiB).
pub const DEFAULT_FRAME_CAP: usize = 1 << 20;

/// Bytes taken by the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Why a stream of frames cannot be decoded further. The link is closed; nothing is allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix named a frame larger than the cap.
    #[error("frame of {len} bytes exceeds the cap of {cap} bytes")]
    TooLarge {
        /// The length the peer announced.
        len: u64,
        /// The cap in force on this link.
        cap: usize,
    },
    /// A frame cannot be encoded because it is larger than the cap.
    #[error("refusing to send a frame of {len} bytes (cap {cap})")]
    OutgoingTooLarge {
        /// The length of the frame.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// A piece of a fragmented frame (see [`super::fragment`]) is malformed.
    #[error("malformed frame piece: {0}")]
    Malformed(&'static str),
}

/// Appends `payload` as one frame to `out`.
pub fn encode_frame(payload: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() > cap {
        return Err(FrameError::OutgoingTooLarge { len: payload.len(), cap });
    }
    // `cap` is at most u32::MAX in practice; a payload that fits the cap fits the prefix.
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::OutgoingTooLarge { len: payload.len(), cap })?;
    out.reserve(PREFIX_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Reassembles frames from arbitrary slices of a byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    cap: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as frames; compacted lazily to avoid a memmove per frame.
    consumed: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `cap` bytes.
    pub fn new(cap: usize) -> Self {
        FrameDecoder { cap, buf: Vec::new(), consumed: 0, failed: None }
    }

    /// Feeds bytes read from the stream. Fails as soon as a length prefix exceeds the cap; after a
    /// failure the decoder stays failed and buffers nothing more.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.consumed > 0 && self.consumed >= self.buf.len() / 2 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.check_prefix()
    }

    fn check_prefix(&mut self) -> Result<(), FrameError> {
        let pending = &self.buf[self.consumed..];
        if pending.len() >= PREFIX_LEN {
            let len = u64::from(u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]));
            if len > self.cap as u64 {
                let e = FrameError::TooLarge { len, cap: self.cap };
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.consumed = 0;
                return Err(e);
            }
        }
        Ok(())
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.check_prefix()?;
        let pending = &self.buf[self.consumed..];
        if pending.len() < PREFIX_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
        if pending.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        let frame = pending[PREFIX_LEN..PREFIX_LEN + len].to_vec();
        self.consumed += PREFIX_LEN + len;
        if self.consumed == self.buf.len() {
            self.buf.clear();
            self.consumed = 0;
        }
        Ok(Some(frame))
    }

    /// Bytes buffered but not yet returned as frames (bounded by the cap plus one read).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oversized_prefix_fails_before_buffering_the_body() {
        let mut d = FrameDecoder::new(1024);
        let err = d.push(&(1u32 << 31).to_be_bytes()).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 1 << 31, cap: 1024 });
        assert_eq!(d.buffered(), 0);
        assert!(d.push(&[0; 10]).is_err(), "a failed decoder stays failed");
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn outgoing_frames_over_the_cap_are_refused() {
        let mut out = Vec::new();
        assert!(encode_frame(&[0; 11], 10, &mut out).is_err());
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn frames_survive_any_split(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20), cut in 1usize..64) {
            let mut stream = Vec::new();
            for f in &frames { encode_frame(f, 1024, &mut stream).unwrap(); }
            let mut d = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                d.push(piece).unwrap();
                while let Some(f) = d.next_frame().unwrap() { got.push(f); }
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), cut in 1usize..512) {
            let mut d = FrameDecoder::new(256);
            for piece in bytes.chunks(cut) {
                if d.push(piece).is_err() { break; }
                while let Ok(Some(_)) = d.next_frame() {}
            }
            prop_assert!(d.buffered() <= 256 + PREFIX_LEN + cut);
        }
    }
}

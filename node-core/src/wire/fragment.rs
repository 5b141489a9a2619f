//! Frames over message transports (WebRTC data channels): a frame may exceed what one message
//! carries, so it is cut into pieces, each prefixed by one flag byte — [`MORE`] or [`LAST`].
//!
//! 64 KiB pieces cross every data-channel implementation (the `webrtc` crate's default maximum
//! message size is 64 KiB; browsers take 256 KiB), and the reassembler refuses to hold more than
//! the frame cap, checked before growing its buffer.

use super::frame::FrameError;

/// Flag of a piece followed by more pieces of the same frame.
pub const MORE: u8 = 1;
/// Flag of a frame's last (or only) piece.
pub const LAST: u8 = 0;
/// Largest piece on the wire, flag byte included.
pub const MAX_PIECE: usize = 64 * 1024;

/// Cuts `frame` into data-channel messages. An empty frame is one message (just the flag).
pub fn split(frame: &[u8]) -> Vec<Vec<u8>> {
    pieces(frame)
        .map(|(flag, body)| {
            let mut piece = Vec::with_capacity(body.len() + 1);
            piece.push(flag);
            piece.extend_from_slice(body);
            piece
        })
        .collect()
}

/// The pieces of `frame` as (flag, body) without copying, for a caller that writes them straight
/// into its own message buffers. An empty frame is one piece with an empty body.
pub fn pieces(frame: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let step = MAX_PIECE - 1;
    let count = frame.len().div_ceil(step).max(1);
    (0..count).map(move |i| {
        let body = &frame[(i * step).min(frame.len())..((i + 1) * step).min(frame.len())];
        (if i + 1 < count { MORE } else { LAST }, body)
    })
}

/// Joins pieces back into frames, for one link.
#[derive(Debug)]
pub struct Reassembler {
    buf: Vec<u8>,
    cap: usize,
}

impl Reassembler {
    /// Accepts frames of at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Reassembler { buf: Vec::new(), cap }
    }

    /// Takes one message; returns a whole frame when `piece` was its last. An empty message, an
    /// unknown flag, an oversized piece or a frame past the cap is an error (close the link).
    pub fn push(&mut self, piece: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let (&flag, body) = piece.split_first().ok_or(FrameError::Malformed("empty data-channel message"))?;
        if piece.len() > MAX_PIECE {
            return Err(FrameError::Malformed("data-channel message over 64 KiB"));
        }
        if self.buf.len() + body.len() > self.cap {
            return Err(FrameError::TooLarge { len: (self.buf.len() + body.len()) as u64, cap: self.cap });
        }
        match flag {
            MORE => {
                self.buf.extend_from_slice(body);
                Ok(None)
            }
            LAST => {
                let mut frame = std::mem::take(&mut self.buf);
                frame.extend_from_slice(body);
                Ok(Some(frame))
            }
            _ => Err(FrameError::Malformed("unknown piece flag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn big_frames_round_trip_and_the_cap_holds() {
        let frame: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let pieces = split(&frame);
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().all(|p| p.len() <= MAX_PIECE));
        let mut r = Reassembler::new(1 << 20);
        let mut got = None;
        for p in &pieces {
            got = r.push(p).unwrap();
        }
        assert_eq!(got.unwrap(), frame);
        let mut small = Reassembler::new(100_000);
        assert!(small.push(&pieces[0]).unwrap().is_none());
        assert!(matches!(small.push(&pieces[1]), Err(FrameError::TooLarge { .. })));
        assert!(Reassembler::new(10).push(&[]).is_err());
        assert!(Reassembler::new(10).push(&[7, 1]).is_err());
        assert_eq!(Reassembler::new(10).push(&split(&[])[0]).unwrap(), Some(vec![]));
    }

    #[test]
    fn a_frame_of_whole_pieces_ends_with_a_full_last_piece() {
        let frame = vec![9u8; 2 * (MAX_PIECE - 1)];
        let flags: Vec<(u8, usize)> = pieces(&frame).map(|(flag, body)| (flag, body.len())).collect();
        assert_eq!(flags, [(MORE, MAX_PIECE - 1), (LAST, MAX_PIECE - 1)]);
    }

    proptest! {
        #[test]
        fn any_frame_round_trips(frame in proptest::collection::vec(any::<u8>(), 0..150_000)) {
            let mut r = Reassembler::new(1 << 20);
            let mut out = Vec::new();
            for p in split(&frame) {
                out.extend(r.push(&p).unwrap());
            }
            prop_assert_eq!(out, vec![frame]);
        }

        #[test]
        fn any_pieces_never_panic(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut r = Reassembler::new(1000);
            for p in pieces {
                let _ = r.push(&p);
            }
        }
    }
}

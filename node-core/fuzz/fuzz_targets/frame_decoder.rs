//! `FrameDecoder` fed an arbitrary byte stream in arbitrary pieces.
//!
//! Input layout: the first byte picks the push size (1..=256 bytes), the rest is the stream.
//! Checks: no panic; `buffered()` never exceeds cap + prefix + the last push; every frame handed
//! out is at most the cap and is exactly the next frame of the stream; once any call has returned
//! an error, every later `push` and `next_frame` returns an error and nothing stays buffered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_core::wire::frame::{FrameDecoder, PREFIX_LEN};

/// Small, so that both whole frames and over-cap prefixes are easy to reach.
const CAP: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first) + 1;

    let mut d = FrameDecoder::new(CAP);
    let mut failed = false;
    // Bytes of `stream` accounted for by the frames handed out so far.
    let mut taken = 0usize;
    // Bytes of `stream` pushed so far.
    let mut pushed_total = 0usize;

    for piece in stream.chunks(chunk) {
        pushed_total += piece.len();
        let pushed = d.push(piece);
        if failed {
            assert!(pushed.is_err(), "push succeeded after the decoder had failed");
        } else if pushed.is_err() {
            failed = true;
        }
        if failed {
            assert_eq!(d.buffered(), 0, "a failed decoder keeps bytes buffered");
        }
        assert!(
            d.buffered() <= CAP + PREFIX_LEN + piece.len(),
            "buffered {} > cap {CAP} + {PREFIX_LEN} + push {}",
            d.buffered(),
            piece.len()
        );

        loop {
            match d.next_frame() {
                Ok(Some(frame)) => {
                    assert!(!failed, "next_frame returned a frame after the decoder had failed");
                    assert!(frame.len() <= CAP, "frame of {} bytes exceeds cap {CAP}", frame.len());
                    let end = taken + PREFIX_LEN + frame.len();
                    assert!(end <= stream.len(), "frame extends past the bytes pushed");
                    let len = u32::from_be_bytes(stream[taken..taken + PREFIX_LEN].try_into().unwrap());
                    assert_eq!(len as usize, frame.len(), "frame length differs from its prefix");
                    assert_eq!(&stream[taken + PREFIX_LEN..end], &frame[..], "frame bytes differ from the stream");
                    taken = end;
                }
                Ok(None) => {
                    assert!(!failed, "next_frame returned Ok after the decoder had failed");
                    break;
                }
                Err(_) => {
                    failed = true;
                    assert_eq!(d.buffered(), 0, "a failed decoder keeps bytes buffered");
                    break;
                }
            }
        }
        assert!(
            d.buffered() <= CAP + PREFIX_LEN + piece.len(),
            "buffered {} > cap {CAP} + {PREFIX_LEN} + push {} after draining",
            d.buffered(),
            piece.len()
        );
        if !failed {
            // Whatever was not handed out as frames is still buffered, byte for byte.
            assert_eq!(d.buffered(), pushed_total - taken, "buffered count drifted from the stream");
        }
    }

    if failed {
        assert!(d.push(&[0; 8]).is_err(), "push succeeded after the decoder had failed");
        assert!(d.next_frame().is_err(), "next_frame succeeded after the decoder had failed");
        assert_eq!(d.buffered(), 0);
    }
});

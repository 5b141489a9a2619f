//! `Announcement::decode_verified` on arbitrary datagrams.
//!
//! Checks: no panic. Each input is tried as is and with the `WEFT1` magic prepended, so the
//! fuzzer spends its time in the postcard body and the signature check rather than the prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_core::discovery::{Announcement, MAGIC};

fuzz_target!(|data: &[u8]| {
    let _ = Announcement::decode_verified(data);

    let mut with_magic = Vec::with_capacity(MAGIC.len() + data.len());
    with_magic.extend_from_slice(MAGIC);
    with_magic.extend_from_slice(data);
    let _ = Announcement::decode_verified(&with_magic);
});

//! `wire::decode` on arbitrary frames.
//!
//! Checks: no panic in `decode` or `Message::validate`; an unknown kind is one at or past
//! `Message::KIND_COUNT`; every decoded message survives `encode` then `decode` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_core::wire::{decode, encode, Decoded, Message};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Decoded::Message(m)) => {
            let _ = m.validate();
            let bytes = encode(&m);
            assert!(!bytes.is_empty(), "encode produced nothing for {m:?}");
            assert_eq!(decode(&bytes), Ok(Decoded::Message(m)), "round trip changed the message");
        }
        Ok(Decoded::UnknownKind(kind)) => {
            assert!(kind >= Message::KIND_COUNT, "kind {kind} is known but was reported unknown");
        }
        Err(_) => {}
    }
});

//! `Envelope::decode` then `open` on arbitrary bytes, and `fragment::Reassembler` on the same
//! bytes cut into pieces.
//!
//! Checks: no panic anywhere; nothing opens for a key that never signed it (a forgery would need
//! an Ed25519 signature by the claimed sender over the fuzzer's bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_core::envelope::Envelope;
use node_core::identity::Keypair;
use node_core::time::Instant;
use node_core::wire::fragment::Reassembler;

fuzz_target!(|data: &[u8]| {
    let me = Keypair::from_secret([7; 32]);
    if let Ok(env) = Envelope::decode(data) {
        let now = Instant::from_unix_ms(env.unix_ms);
        assert!(env.open(&me, now).is_err(), "a fuzzed envelope opened");
    }
    let mut joiner = Reassembler::new(4096);
    for piece in data.chunks(97) {
        let _ = joiner.push(piece);
    }
});

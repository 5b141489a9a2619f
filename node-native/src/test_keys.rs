//! Keys for tests of handshakes where the ids decide the roles (the lower PeerId connects or
//! initiates), so each role can be given to the honest end.

use node_core::identity::Keypair;

/// Keys that sort below and above `me`, made from secrets starting at `from`.
pub fn around(me: &Keypair, from: u8) -> (Keypair, Keypair) {
    let keys = (from..=u8::MAX).map(|s| Keypair::from_secret([s; 32]));
    let below = keys.clone().find(|k| k.peer_id() < me.peer_id()).expect("a key below");
    let above = keys.clone().find(|k| k.peer_id() > me.peer_id()).expect("a key above");
    (below, above)
}

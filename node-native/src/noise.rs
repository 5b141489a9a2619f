//! Noise XX over TCP, with the Ed25519 identity bound into the handshake.
//!
//! Each side sends, in its handshake payload, its Ed25519 public key and a signature over its
//! Noise static key (domain `weft/v1/noise-static`). The receiver checks the signature against
//! the key it just learned from Noise, so the `PeerId` a link reports is proven, not claimed.
//! After the handshake, each side frames its byte stream into Noise transport messages of at most
//! 65535 bytes, each preceded by a big-endian `u16` length.

use node_core::identity::{signed_bytes, signing_domain, Keypair, Signature};
use node_core::PeerId;
use snow::{params::NoiseParams, Builder, StatelessTransportState};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The Noise protocol Weft uses. DESIGN.md asked for the suite to be picked by measurement:
/// with snow's built-in resolver, ChaCha20-Poly1305 seals about 15 % faster than AES-GCM on
/// this project's machines (`cargo bench --bench bulk_transfer`, docs/BENCHMARKS.md), so it wins.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// Largest Noise message.
pub const MAX_NOISE_MESSAGE: usize = 65535;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Length of the identity-binding payload: Ed25519 key + signature.
const BINDING_LEN: usize = 32 + 64;

/// Why a Noise handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Noise itself rejected a message.
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    /// The identity payload is missing or its signature does not cover the Noise static key.
    #[error("the peer's identity is not bound to its noise key")]
    BadBinding,
    /// The peer proved an identity other than the one we dialed for.
    #[error("expected peer {expected} but it is {actual}")]
    UnexpectedPeer {
        /// Whom we dialed.
        expected: String,
        /// Who answered.
        actual: String,
    },
}

/// The payload binding `identity` to the Noise static public key `static_pub`.
pub fn binding_payload(identity: &Keypair, static_pub: &[u8]) -> Vec<u8> {
    let sig = identity.sign(&signed_bytes(signing_domain::NOISE_BINDING, static_pub));
    let mut out = Vec::with_capacity(BINDING_LEN);
    out.extend_from_slice(identity.peer_id().as_bytes());
    out.extend_from_slice(&sig.to_bytes());
    out
}

fn verify_binding(payload: &[u8], remote_static: Option<&[u8]>) -> Result<PeerId, HandshakeError> {
    let remote_static = remote_static.ok_or(HandshakeError::BadBinding)?;
    if payload.len() != BINDING_LEN {
        return Err(HandshakeError::BadBinding);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[..32]);
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&payload[32..]);
    let peer = PeerId::from_bytes(key);
    if !peer.verify(&signed_bytes(signing_domain::NOISE_BINDING, remote_static), &Signature::from_bytes(sig)) {
        return Err(HandshakeError::BadBinding);
    }
    Ok(peer)
}

/// A fresh Noise static key pair (one per process is enough: identity comes from the binding).
pub fn generate_static() -> snow::Keypair {
    // The built-in resolver supports these parameters; failing here is a build defect.
    let params: NoiseParams = NOISE_PARAMS.parse().expect("valid noise params");
    Builder::new(params).generate_keypair().expect("the default resolver generates x25519 keys")
}

/// What a finished handshake yields: the cipher state and the proven remote identity.
pub struct Established {
    /// Shared by the reading and writing halves, each with its own nonce counter.
    pub transport: Arc<StatelessTransportState>,
    /// The remote identity, proven by the binding.
    pub peer: PeerId,
}

async fn write_msg<S: AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("noise message too long"))?;
    let mut buf = Vec::with_capacity(2 + msg.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg);
    s.write_all(&buf).await
}

async fn read_msg<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    s.read_exact(&mut buf[..len]).await?;
    Ok(len)
}

/// Runs the initiator side of Noise XX with `payload` as our identity binding.
pub async fn initiate_with_payload<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    static_key: &snow::Keypair,
    payload: &[u8],
    expect: Option<PeerId>,
) -> Result<Established, HandshakeError> {
    let params: NoiseParams = NOISE_PARAMS.parse()?;
    let mut hs = Builder::new(params).local_private_key(&static_key.private).build_initiator()?;
    let mut msg = vec![0u8; MAX_NOISE_MESSAGE];
    let mut pay = vec![0u8; MAX_NOISE_MESSAGE];
    let n = hs.write_message(&[], &mut msg)?;
    write_msg(stream, &msg[..n]).await?;
    let n = read_msg(stream, &mut msg).await?;
    let p = hs.read_message(&msg[..n], &mut pay)?;
    let peer = verify_binding(&pay[..p], hs.get_remote_static())?;
    if let Some(expected) = expect {
        if expected != peer {
            return Err(HandshakeError::UnexpectedPeer { expected: expected.to_string(), actual: peer.to_string() });
        }
    }
    let n = hs.write_message(payload, &mut msg)?;
    write_msg(stream, &msg[..n]).await?;
    Ok(Established { transport: Arc::new(hs.into_stateless_transport_mode()?), peer })
}

/// Runs the initiator side with the correct binding for `identity`.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    identity: &Keypair,
    static_key: &snow::Keypair,
    expect: Option<PeerId>,
) -> Result<Established, HandshakeError> {
    let payload = binding_payload(identity, &static_key.public);
    initiate_with_payload(stream, static_key, &payload, expect).await
}

/// The handshake for a link both ends set up at once (a relayed stream, a punched connection),
/// where neither dialed the other: the lower PeerId plays initiator, and each end requires
/// exactly `peer` at the other.
pub async fn handshake_between<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    identity: &Keypair,
    static_key: &snow::Keypair,
    peer: PeerId,
) -> Result<Established, String> {
    if identity.peer_id() < peer {
        return initiate(stream, identity, static_key, Some(peer)).await.map_err(|e| e.to_string());
    }
    let e = respond(stream, identity, static_key).await.map_err(|e| e.to_string())?;
    if e.peer != peer {
        return Err(format!("the other end is {}, not {peer}", e.peer));
    }
    Ok(e)
}

/// Runs the responder side of Noise XX.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    identity: &Keypair,
    static_key: &snow::Keypair,
) -> Result<Established, HandshakeError> {
    let params: NoiseParams = NOISE_PARAMS.parse()?;
    let mut hs = Builder::new(params).local_private_key(&static_key.private).build_responder()?;
    let mut msg = vec![0u8; MAX_NOISE_MESSAGE];
    let mut pay = vec![0u8; MAX_NOISE_MESSAGE];
    let n = read_msg(stream, &mut msg).await?;
    hs.read_message(&msg[..n], &mut pay)?;
    let payload = binding_payload(identity, &static_key.public);
    let n = hs.write_message(&payload, &mut msg)?;
    write_msg(stream, &msg[..n]).await?;
    let n = read_msg(stream, &mut msg).await?;
    let p = hs.read_message(&msg[..n], &mut pay)?;
    let peer = verify_binding(&pay[..p], hs.get_remote_static())?;
    Ok(Established { transport: Arc::new(hs.into_stateless_transport_mode()?), peer })
}

/// Encrypts a plaintext byte stream into Noise messages, counting nonces.
pub struct Sealer {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    scratch: Vec<u8>,
}

impl Sealer {
    /// The sending half.
    pub fn new(transport: Arc<StatelessTransportState>) -> Self {
        Sealer { transport, nonce: 0, scratch: vec![0u8; MAX_NOISE_MESSAGE] }
    }

    /// Appends `plain` to `out` as length-prefixed Noise messages.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), snow::Error> {
        for piece in plain.chunks(MAX_NOISE_MESSAGE - TAG_LEN) {
            let n = self.transport.write_message(self.nonce, piece, &mut self.scratch)?;
            self.nonce += 1;
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&self.scratch[..n]);
        }
        Ok(())
    }
}

/// Decrypts length-prefixed Noise messages from a stream.
pub struct Opener {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    cipher: Vec<u8>,
}

impl Opener {
    /// The receiving half.
    pub fn new(transport: Arc<StatelessTransportState>) -> Self {
        Opener { transport, nonce: 0, cipher: vec![0u8; MAX_NOISE_MESSAGE] }
    }

    /// Reads and decrypts one Noise message into `plain` (resized to fit); `Ok(false)` at a clean EOF.
    pub async fn open<S: AsyncRead + Unpin>(&mut self, s: &mut S, plain: &mut Vec<u8>) -> std::io::Result<bool> {
        let mut len = [0u8; 2];
        match s.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let len = usize::from(u16::from_be_bytes(len));
        s.read_exact(&mut self.cipher[..len]).await?;
        plain.resize(MAX_NOISE_MESSAGE, 0);
        let n = self
            .transport
            .read_message(self.nonce, &self.cipher[..len], plain)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("noise: {e}")))?;
        self.nonce += 1;
        plain.truncate(n);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::around;

    /// Runs `handshake_between` on both ends of a pipe: `a` expecting `a_expects`, `b` expecting
    /// `b_expects`.
    async fn between(
        a: &Keypair,
        a_expects: PeerId,
        b: &Keypair,
        b_expects: PeerId,
    ) -> (Result<PeerId, String>, Result<PeerId, String>) {
        let (x, y) = tokio::io::duplex(64 * 1024);
        let (sa, sb) = (generate_static(), generate_static());
        // Each end owns its half, so an end that gives up closes the pipe and the other's read
        // ends too.
        // Two ends that both expect to initiate (a stranger's id sorts the other way) would wait
        // for each other: the drivers bound every handshake in time, and so does this.
        let limit = std::time::Duration::from_secs(2);
        let timed_out = |_| "timed out".to_owned();
        let left = async move {
            let mut x = x;
            let hs = handshake_between(&mut x, a, &sa, a_expects);
            tokio::time::timeout(limit, hs).await.map_err(timed_out)?.map(|e| e.peer)
        };
        let right = async move {
            let mut y = y;
            let hs = handshake_between(&mut y, b, &sb, b_expects);
            tokio::time::timeout(limit, hs).await.map_err(timed_out)?.map(|e| e.peer)
        };
        let (l, r) = tokio::join!(left, right);
        (l, r)
    }

    #[tokio::test]
    async fn both_ends_of_a_relayed_or_punched_link_require_the_expected_key() {
        let alice = Keypair::from_secret([1; 32]);
        let (low, high) = around(&alice, 2);
        for bob in [&low, &high] {
            let (l, r) = between(&alice, bob.peer_id(), bob, alice.peer_id()).await;
            assert_eq!((l, r), (Ok(bob.peer_id()), Ok(alice.peer_id())));
        }
        // Mallory answers where Bob was expected, in the role Bob would have had (Alice
        // initiating, then responding): Alice refuses Mallory's key both times, rather than
        // both ends waiting for each other until the time limit.
        let (mallory_low, mallory_high) = around(&alice, 100);
        for (bob, mallory) in [(&high, &mallory_high), (&low, &mallory_low)] {
            assert_eq!(bob.peer_id() > alice.peer_id(), mallory.peer_id() > alice.peer_id(), "same role");
            let (l, r) = between(&alice, bob.peer_id(), mallory, alice.peer_id()).await;
            let refusal = l.expect_err("alice refused mallory");
            assert_ne!(refusal, "timed out", "refused for the key, not a stalemate");
            // XX ends with the initiator's message: an initiating Mallory finishes her side
            // before Alice checks it (Alice then drops the stream). An initiating Alice stops
            // before her last message, so Mallory's side never finishes.
            if bob.peer_id() > alice.peer_id() {
                assert!(r.is_err(), "mallory's end does not come up either");
            }
        }
    }
}

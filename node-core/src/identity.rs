//! Who a node is: an Ed25519 key pair, and the [`PeerId`] that names it everywhere.
//!
//! A `PeerId` is the 32-byte public key itself, so anything signed by a peer can be checked with
//! nothing but its id. Its text form is lowercase RFC 4648 base32 without padding (52 characters);
//! the short form (first 8 characters) is for logs and UIs only, never for lookups.

use core::fmt;
use core::str::FromStr;
use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signature as DalekSignature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of the text form of a [`PeerId`].
pub const PEER_ID_TEXT_LEN: usize = 52;

/// A node's identity on the wire: its Ed25519 public key.
///
/// Serialized as its 32 bytes in binary formats (postcard) and as its text form in human-readable
/// ones (JSON), so one type serves both the wire and the HTTP API.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId([u8; 32]);

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = std::borrow::Cow::<str>::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(PeerId)
        }
    }
}

impl PeerId {
    /// The id whose key bytes are `bytes` (not checked to be a valid curve point; see [`verify`](Self::verify)).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        PeerId(bytes)
    }

    /// The raw public-key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The X25519 public key of this identity (its Edwards point in Montgomery form), to seal
    /// messages only this peer can open. `None` when the bytes are not a valid Ed25519 key.
    pub fn x25519(&self) -> Option<[u8; 32]> {
        VerifyingKey::from_bytes(&self.0).ok().map(|k| k.to_montgomery().to_bytes())
    }

    /// The first 8 characters of the text form, for logs and UIs.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(8);
        s
    }

    /// Checks `signature` over `message` against this id's key. Any malformed key or signature is
    /// simply "not valid".
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &DalekSignature::from_bytes(&signature.0)).is_ok()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

/// Why a string is not a [`PeerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerIdParseError {
    /// The text is not 52 characters long.
    #[error("a peer id is {PEER_ID_TEXT_LEN} base32 characters, got {0}")]
    Length(usize),
    /// The text has characters outside the base32 alphabet.
    #[error("a peer id is lowercase base32 (a-z, 2-7)")]
    Alphabet,
}

impl FromStr for PeerId {
    type Err = PeerIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != PEER_ID_TEXT_LEN {
            return Err(PeerIdParseError::Length(s.len()));
        }
        let bytes = BASE32_NOPAD.decode(s.to_ascii_uppercase().as_bytes()).map_err(|_| PeerIdParseError::Alphabet)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| PeerIdParseError::Alphabet)?;
        Ok(PeerId(arr))
    }
}

/// An Ed25519 signature, carried in messages: raw bytes in binary formats, lowercase hex in
/// human-readable ones.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "sig_bytes")] [u8; 64]);

impl Signature {
    /// The raw signature bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
    /// A signature from raw bytes (validity is checked only by [`PeerId::verify`]).
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

mod sig_bytes {
    use data_encoding::HEXLOWER_PERMISSIVE;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&HEXLOWER_PERMISSIVE.encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let bytes = if d.is_human_readable() {
            let text = std::borrow::Cow::<str>::deserialize(d)?;
            HEXLOWER_PERMISSIVE.decode(text.as_bytes()).map_err(|_| serde::de::Error::custom("a signature is hex"))?
        } else {
            serde_bytes::ByteBuf::deserialize(d)?.into_vec()
        };
        let len = bytes.len();
        bytes.try_into().map_err(|_| serde::de::Error::invalid_length(len, &"64 bytes"))
    }
}

/// A node's secret key and the [`PeerId`] derived from it.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A fresh key pair from a cryptographic RNG (drivers pass the OS RNG; tests a seeded one).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Keypair { signing: SigningKey::generate(rng) }
    }

    /// The key pair whose 32-byte secret seed is `secret` (the form persisted on disk).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Keypair { signing: SigningKey::from_bytes(&secret) }
    }

    /// The 32-byte secret seed, for persisting.
    pub fn secret(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// This node's id.
    pub fn peer_id(&self) -> PeerId {
        PeerId(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message`. Callers prefix messages with a domain tag (see [`signing_domain`]) so that a
    /// signature made for one purpose can never be replayed as another.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    /// The X25519 secret that matches [`PeerId::x25519`]: the same key, used for sealing
    /// (the standard Ed25519-to-Curve25519 conversion, as libsodium's).
    pub fn x25519_secret(&self) -> [u8; 32] {
        self.signing.to_scalar_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.peer_id().short())
    }
}

/// Domain tags prefixed to everything Weft signs, one per purpose.
pub mod signing_domain {
    /// A LAN discovery announcement.
    pub const ANNOUNCE: &[u8] = b"weft/v1/announce\0";
    /// A broadcast chat message (signed by its author, relayed by others).
    pub const CHAT: &[u8] = b"weft/v1/chat\0";
    /// A direct message (signed by its author, possibly routed by others).
    pub const DIRECT: &[u8] = b"weft/v1/direct\0";
    /// A signaling envelope (signed by its sender, sealed to its recipient).
    pub const ENVELOPE: &[u8] = b"weft/v1/envelope\0";
    /// The binding of a Noise static key to an Ed25519 identity, in the handshake payload.
    pub const NOISE_BINDING: &[u8] = b"weft/v1/noise-static\0";
    /// A record stored in the DHT (signed by its publisher, served by whoever stores it).
    pub const DHT_RECORD: &[u8] = b"weft/v1/dht-record\0";
}

/// Builds `domain || body` for signing, so every call site uses the same layout.
pub fn signed_bytes(domain: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(domain.len() + body.len());
    v.extend_from_slice(domain);
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    #[test]
    fn text_form_round_trips_and_is_lowercase_base32() {
        let kp = Keypair::generate(&mut ChaCha8Rng::seed_from_u64(1));
        let id = kp.peer_id();
        let text = id.to_string();
        assert_eq!(text.len(), PEER_ID_TEXT_LEN);
        assert!(text.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
        assert_eq!(text.parse::<PeerId>(), Ok(id));
        assert_eq!(id.short(), text[..8]);
    }

    #[test]
    fn bad_text_is_a_clear_error() {
        assert_eq!("abc".parse::<PeerId>(), Err(PeerIdParseError::Length(3)));
        assert_eq!("1".repeat(52).parse::<PeerId>(), Err(PeerIdParseError::Alphabet));
    }

    #[test]
    fn signatures_verify_only_for_the_signer_and_message() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = Keypair::generate(&mut rng);
        let b = Keypair::generate(&mut rng);
        let sig = a.sign(b"hello");
        assert!(a.peer_id().verify(b"hello", &sig));
        assert!(!a.peer_id().verify(b"hellO", &sig));
        assert!(!b.peer_id().verify(b"hello", &sig));
        assert!(!PeerId::from_bytes([0xff; 32]).verify(b"hello", &sig));
    }

    #[test]
    fn secret_round_trips() {
        let a = Keypair::generate(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(Keypair::from_secret(a.secret()).peer_id(), a.peer_id());
    }
}

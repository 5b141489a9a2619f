//! Signaling envelopes: what two nodes tell each other to set up a link (WebRTC descriptions and
//! candidates today, punch timing later) when they have no link yet.
//!
//! An envelope travels over whatever is up — the bootstrap server's websocket, a native node's
//! `/v1/signal`, mesh links, an MQTT broker — and none of those carriers is trusted:
//! - the body is **sealed** to the recipient (libsodium's sealed box: X25519 of the recipient's
//!   Ed25519 key, XSalsa20-Poly1305), so carriers see only ciphertext;
//! - the whole envelope is **signed** by the sender's Ed25519 key, so the body (and the DTLS
//!   fingerprint inside a WebRTC description) is bound to the sender's PeerId;
//! - receivers check the recipient, a ±2-minute clock window and a bounded replay cache of nonces.

use crate::identity::{signed_bytes, signing_domain, Keypair, PeerId, Signature};
use crate::time::Instant;
use core::time::Duration;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// Largest encoded envelope (the bootstrap server forwards at most this much).
pub const MAX_ENVELOPE_LEN: usize = crate::signal::MAX_SIGNAL_PAYLOAD;
/// Longest session description carried.
pub const MAX_SDP_LEN: usize = 32 * 1024;
/// Longest ICE candidate line (and its mid / ufrag).
pub const MAX_CANDIDATE_LEN: usize = 1024;
/// Longest refusal reason.
pub const MAX_REASON_LEN: usize = 256;
/// How far an envelope's clock may be from the receiver's.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(120);

/// A signed, sealed message from one PeerId to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender, whose key signed the envelope.
    pub from: PeerId,
    /// The only node that can open it.
    pub to: PeerId,
    /// Random per envelope: the replay and duplicate key (with `from`).
    pub nonce: [u8; 16],
    /// When it was sealed, by the sender's clock.
    pub unix_ms: u64,
    /// The [`SignalBody`], sealed to `to`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    /// The sender's signature over everything above.
    pub signature: Signature,
}

/// What an envelope says, once opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalBody {
    /// One step of setting up a WebRTC link.
    Rtc {
        /// Chosen by the offerer; names the link attempt on both ends.
        session: u64,
        /// The step.
        signal: RtcSignal,
    },
    /// One step of linking two nodes across networks (see [`crate::nat::plan`]).
    Connect {
        /// Chosen by the initiator; names the attempt on both ends.
        session: u64,
        /// The step.
        step: ConnectSignal,
    },
}

/// A step of a cross-network link attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectSignal {
    /// Initiator → responder: let us link; this is my side.
    Hello {
        /// The initiator's listen addresses, NAT and relay.
        info: crate::nat::plan::EndpointInfo,
    },
    /// Responder → initiator: agreed; this is mine.
    Welcome {
        /// The responder's side.
        info: crate::nat::plan::EndpointInfo,
    },
    /// Initiator → responder: do your part of this strategy now.
    Try {
        /// Which.
        strategy: crate::nat::plan::Strategy,
    },
    /// Initiator → responder: punch towards me at this address.
    Punch {
        /// TCP or UDP.
        proto: crate::interface::PunchProto,
        /// The initiator's predicted public address for the punch.
        addr: core::net::SocketAddr,
    },
    /// Responder → initiator: and towards me here, starting at `at_ms` (Unix milliseconds).
    PunchReply {
        /// TCP or UDP.
        proto: crate::interface::PunchProto,
        /// The responder's predicted public address.
        addr: core::net::SocketAddr,
        /// When both start.
        at_ms: u64,
    },
    /// Either side: the attempt is over (refused, given up or done without a link).
    Abandon {
        /// Why, for the user.
        reason: String,
    },
}

/// A step of WebRTC negotiation. The descriptions carry the DTLS fingerprints, so the signature on
/// the envelope is what binds the data channel to the sender's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RtcSignal {
    /// The offerer's session description (SDP).
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// The answerer's session description (SDP).
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate, as the browser's `RTCIceCandidateInit`.
    Candidate(IceCandidate),
    /// The attempt is refused or abandoned (a full node, a duplicate).
    Hangup {
        /// Why, for the user.
        reason: String,
    },
}

/// An ICE candidate in the browser's `RTCIceCandidateInit` shape (camelCase in JSON), which the
/// `webrtc` crate reads and writes too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line.
    pub candidate: String,
    /// The media stream id it belongs to.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// The media line index it belongs to.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment.
    #[serde(default)]
    pub username_fragment: Option<String>,
}

impl SignalBody {
    /// Checks the sizes a sender controls.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        let ok = match self {
            SignalBody::Rtc { signal, .. } => match signal {
                RtcSignal::Offer { sdp } | RtcSignal::Answer { sdp } => sdp.len() <= MAX_SDP_LEN,
                RtcSignal::Candidate(c) => {
                    c.candidate.len() <= MAX_CANDIDATE_LEN
                        && c.sdp_mid.as_ref().is_none_or(|m| m.len() <= MAX_CANDIDATE_LEN)
                        && c.username_fragment.as_ref().is_none_or(|u| u.len() <= MAX_CANDIDATE_LEN)
                }
                RtcSignal::Hangup { reason } => reason.len() <= MAX_REASON_LEN,
            },
            SignalBody::Connect { step, .. } => match step {
                ConnectSignal::Hello { info } | ConnectSignal::Welcome { info } => {
                    info.addrs.len() <= crate::nat::plan::MAX_ADDRS
                }
                ConnectSignal::Try { .. } | ConnectSignal::Punch { .. } | ConnectSignal::PunchReply { .. } => true,
                ConnectSignal::Abandon { reason } => reason.len() <= MAX_REASON_LEN,
            },
        };
        if ok {
            Ok(())
        } else {
            Err(EnvelopeError::TooLarge)
        }
    }
}

/// Why an envelope was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes are not an envelope.
    #[error("not an envelope")]
    Malformed,
    /// The envelope or a field in it is over its limit.
    #[error("envelope too large")]
    TooLarge,
    /// The signature does not verify against `from`.
    #[error("bad envelope signature")]
    BadSignature,
    /// The recipient's key cannot receive sealed messages.
    #[error("recipient key unusable")]
    BadRecipient,
    /// Its clock is outside the window.
    #[error("envelope too old or from the future")]
    Stale,
    /// Addressed to another node.
    #[error("envelope for another node")]
    NotForMe,
    /// The seal does not open with our key, or the body does not parse.
    #[error("envelope does not open")]
    CannotOpen,
}

fn signing_input(from: &PeerId, to: &PeerId, nonce: &[u8; 16], unix_ms: u64, sealed: &[u8]) -> Vec<u8> {
    let body = postcard::to_allocvec(&(from, to, nonce, unix_ms, serde_bytes::Bytes::new(sealed))).unwrap_or_default();
    signed_bytes(signing_domain::ENVELOPE, &body)
}

impl Envelope {
    /// Seals `body` to `to` and signs it with `keys`.
    pub fn seal<R: RngCore + CryptoRng>(
        keys: &Keypair,
        to: PeerId,
        now: Instant,
        body: &SignalBody,
        rng: &mut R,
    ) -> Result<Envelope, EnvelopeError> {
        let recipient = crypto_box::PublicKey::from(to.x25519().ok_or(EnvelopeError::BadRecipient)?);
        let plain = postcard::to_allocvec(body).map_err(|_| EnvelopeError::Malformed)?;
        let sealed = recipient.seal(rng, &plain).map_err(|_| EnvelopeError::BadRecipient)?;
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let from = keys.peer_id();
        let unix_ms = now.unix_ms();
        let signature = keys.sign(&signing_input(&from, &to, &nonce, unix_ms, &sealed));
        let env = Envelope { from, to, nonce, unix_ms, sealed, signature };
        if env.encode().len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::TooLarge);
        }
        Ok(env)
    }

    /// The bytes carriers forward.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Parses carrier bytes (length-checked first), without verifying anything.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::TooLarge);
        }
        postcard::from_bytes(bytes).map_err(|_| EnvelopeError::Malformed)
    }

    /// Checks what anyone on the path can check: the sender's signature and the clock window.
    /// Relays call this before forwarding, so forged envelopes die at the first hop.
    pub fn verify(&self, now: Instant) -> Result<(), EnvelopeError> {
        if self.unix_ms.abs_diff(now.unix_ms()) > CLOCK_WINDOW.as_millis() as u64 {
            return Err(EnvelopeError::Stale);
        }
        let input = signing_input(&self.from, &self.to, &self.nonce, self.unix_ms, &self.sealed);
        if !self.from.verify(&input, &self.signature) {
            return Err(EnvelopeError::BadSignature);
        }
        Ok(())
    }

    /// Verifies, then opens the body with the recipient's `keys`. The caller keeps the replay
    /// cache (keyed by `from` and `nonce`).
    pub fn open(&self, keys: &Keypair, now: Instant) -> Result<SignalBody, EnvelopeError> {
        if self.to != keys.peer_id() {
            return Err(EnvelopeError::NotForMe);
        }
        self.verify(now)?;
        let secret = crypto_box::SecretKey::from(keys.x25519_secret());
        let plain = secret.unseal(&self.sealed).map_err(|_| EnvelopeError::CannotOpen)?;
        let body: SignalBody = postcard::from_bytes(&plain).map_err(|_| EnvelopeError::CannotOpen)?;
        body.validate()?;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn keys(n: u8) -> Keypair {
        Keypair::from_secret([n; 32])
    }

    fn offer() -> SignalBody {
        SignalBody::Rtc { session: 7, signal: RtcSignal::Offer { sdp: "v=0 a=fingerprint:sha-256 AB".into() } }
    }

    #[test]
    fn sealed_envelopes_open_only_for_their_recipient() {
        let (a, b, c) = (keys(1), keys(2), keys(3));
        let now = Instant::from_unix_ms(1_700_000_000_000);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let env = Envelope::seal(&a, b.peer_id(), now, &offer(), &mut rng).unwrap();
        let bytes = env.encode();
        // The carrier sees no SDP text.
        assert!(!bytes.windows(3).any(|w| w == b"v=0"));
        let got = Envelope::decode(&bytes).unwrap();
        assert_eq!(got.open(&b, now).unwrap(), offer());
        assert_eq!(got.open(&c, now), Err(EnvelopeError::NotForMe));
        // Re-addressed to c by a carrier: the signature breaks, and the seal would not open anyway.
        let mut moved = got.clone();
        moved.to = c.peer_id();
        assert_eq!(moved.open(&c, now), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn connect_steps_with_a_nat_report_survive_the_seal() {
        use crate::nat::plan::{EndpointInfo, Strategy};
        use crate::nat::{Filtering, Mapping, NatReport, NatType, PortAllocation};
        let (a, b) = (keys(1), keys(2));
        let now = Instant::from_unix_ms(1_700_000_000_000);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let nat = NatReport {
            nat_type: NatType::Symmetric,
            public: Some("198.51.100.1:4000".parse().unwrap()),
            mapping: Some(Mapping::AddressAndPortDependent),
            filtering: Some(Filtering::AddressAndPortDependent),
            allocation: Some(PortAllocation::FixedDelta(-2)),
            exact: true,
        };
        let info = EndpointInfo {
            addrs: vec!["10.0.1.2:7000".parse().unwrap()],
            nat: Some(nat),
            relay: true,
            punch: Default::default(),
            mapped: Some("198.51.100.7:7000".parse().unwrap()),
        };
        for step in [
            ConnectSignal::Hello { info: info.clone() },
            ConnectSignal::Welcome { info: EndpointInfo::default() },
            ConnectSignal::Try { strategy: Strategy::Relay },
            ConnectSignal::Abandon { reason: "busy".into() },
        ] {
            let body = SignalBody::Connect { session: 9, step };
            let env = Envelope::seal(&a, b.peer_id(), now, &body, &mut rng).unwrap();
            assert_eq!(Envelope::decode(&env.encode()).unwrap().open(&b, now).unwrap(), body);
        }
    }

    #[test]
    fn tampering_staleness_and_forgery_are_refused() {
        let (a, b, mallory) = (keys(1), keys(2), keys(9));
        let now = Instant::from_unix_ms(1_700_000_000_000);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let env = Envelope::seal(&a, b.peer_id(), now, &offer(), &mut rng).unwrap();
        let mut flipped = env.clone();
        flipped.sealed[40] ^= 1;
        assert_eq!(flipped.open(&b, now), Err(EnvelopeError::BadSignature));
        let late = now + CLOCK_WINDOW + Duration::from_secs(1);
        assert_eq!(env.open(&b, late), Err(EnvelopeError::Stale));
        // Mallory seals her own body but claims to be a.
        let mut forged = Envelope::seal(&mallory, b.peer_id(), now, &offer(), &mut rng).unwrap();
        forged.from = a.peer_id();
        assert_eq!(forged.open(&b, now), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn garbage_and_oversize_are_errors_not_panics() {
        assert_eq!(Envelope::decode(&[1, 2, 3]), Err(EnvelopeError::Malformed));
        assert_eq!(Envelope::decode(&vec![0; MAX_ENVELOPE_LEN + 1]), Err(EnvelopeError::TooLarge));
        let now = Instant::from_unix_ms(1_700_000_000_000);
        let huge = SignalBody::Rtc { session: 1, signal: RtcSignal::Offer { sdp: "x".repeat(70_000) } };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(Envelope::seal(&keys(1), keys(2).peer_id(), now, &huge, &mut rng), Err(EnvelopeError::TooLarge));
    }

    #[test]
    fn candidates_use_the_browser_json_shape() {
        let c = IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["sdpMid"], "0");
        assert_eq!(json["sdpMLineIndex"], 0);
        let back: IceCandidate = serde_json::from_str(r#"{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}"#).unwrap();
        assert_eq!(back.sdp_m_line_index, Some(0));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_error(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = Envelope::decode(&bytes);
        }
    }
}

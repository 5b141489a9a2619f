//! The bootstrap server's websocket protocols, `/v1/signal` and `/v1/relay`: JSON text messages
//! tagged by `type`, shared by the server and every client.
//!
//! Both start the same way: the server sends a [`ServerMsg::Challenge`] with a fresh nonce, the
//! client answers [`ClientMsg::Login`] with its signature over [`login_bytes`], and from then on it
//! speaks as that PeerId. Signaling forwards opaque payloads (a node seals them end to end, so the
//! server sees only ciphertext); the relay forwards binary frames between two peers that asked for
//! each other.

use crate::identity::{signed_bytes, PeerId, Signature};
use serde::{Deserialize, Serialize};

/// Domain tag of a login signature.
pub const LOGIN_DOMAIN: &[u8] = b"weft/v1/server-login\0";
/// Largest payload a signaling envelope may carry.
pub const MAX_SIGNAL_PAYLOAD: usize = 64 * 1024;
/// Length of a login challenge nonce.
pub const NONCE_LEN: usize = 32;

/// The bytes a client signs to log in: the server's key, the nonce the server chose for this
/// connection, and the mesh it joins (so a signature is good for one server, one connection).
pub fn login_bytes(server_key: &PeerId, nonce: &[u8], peer_id: &PeerId, mesh_id: &str) -> Vec<u8> {
    let body = postcard::to_allocvec(&(server_key, nonce, peer_id, mesh_id)).unwrap_or_default();
    signed_bytes(LOGIN_DOMAIN, &body)
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Log in as `peer_id` in `mesh_id`, proving the key with a signature over [`login_bytes`].
    Login {
        /// Who the client is.
        peer_id: PeerId,
        /// The mesh whose presence events it wants.
        mesh_id: String,
        /// Signature over [`login_bytes`].
        signature: Signature,
    },
    /// Signaling: forward `payload` to `to`.
    Send {
        /// The recipient.
        to: PeerId,
        /// Opaque to the server (base64 in JSON), at most [`MAX_SIGNAL_PAYLOAD`] bytes.
        #[serde(with = "crate::serde_forms::base64_bytes")]
        payload: Vec<u8>,
    },
    /// Relay: ask to be joined with `peer`; frames flow once both asked for each other.
    RelayTo {
        /// The other end.
        peer: PeerId,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The first message: sign this to log in.
    Challenge {
        /// The server's key (compare with the pinned one).
        server_key: PeerId,
        /// A fresh nonce for this connection, base64 in JSON.
        #[serde(with = "crate::serde_forms::base64_bytes")]
        nonce: Vec<u8>,
    },
    /// Logged in; `peers` are the others online in the same mesh.
    Welcome {
        /// Peers of the mesh connected to the server now.
        peers: Vec<PeerId>,
    },
    /// A peer of the mesh came online.
    PeerJoined {
        /// Who.
        peer_id: PeerId,
    },
    /// A peer of the mesh went offline.
    PeerLeft {
        /// Who.
        peer_id: PeerId,
    },
    /// A payload another client sent to this one.
    Envelope {
        /// The sender, as authenticated by its login.
        from: PeerId,
        /// The payload, as sent.
        #[serde(with = "crate::serde_forms::base64_bytes")]
        payload: Vec<u8>,
    },
    /// Relay: both ends asked; binary frames now flow between them.
    RelayReady {
        /// The other end.
        peer: PeerId,
    },
    /// Something was refused; the connection stays open unless the code says otherwise.
    Error {
        /// What went wrong.
        code: SignalError,
        /// For humans.
        message: String,
    },
}

/// Stable error codes of the websocket protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalError {
    /// Not a message of this protocol (or not JSON text).
    BadMessage,
    /// The login signature does not verify, or the mesh id is too long (the server closes).
    BadLogin,
    /// Anything but `login` before logging in.
    NotLoggedIn,
    /// The recipient is not connected to this server.
    UnknownRecipient,
    /// The recipient is not reading fast enough; the envelope was not delivered.
    RecipientBusy,
    /// The message exceeds the size limit.
    TooLarge,
    /// Too many messages or bytes: slow down.
    RateLimited,
    /// A relay limit (sessions per peer or address) is reached.
    RelayLimit,
    /// The same PeerId logged in on another connection; this one is closed.
    Replaced,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn messages_are_tagged_json_with_text_ids() {
        let keys = Keypair::from_secret([8; 32]);
        let m = ClientMsg::Send { to: keys.peer_id(), payload: vec![1, 2, 3] };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!(r#"{{"type":"send","to":"{}","payload":"AQID"}}"#, keys.peer_id()));
        assert_eq!(serde_json::from_str::<ClientMsg>(&json).unwrap(), m);
        let e = ServerMsg::Error { code: SignalError::UnknownRecipient, message: "x".into() };
        assert!(serde_json::to_string(&e).unwrap().contains(r#""code":"unknown_recipient""#));
    }

    #[test]
    fn a_login_signature_binds_server_nonce_peer_and_mesh() {
        let server = Keypair::from_secret([9; 32]).peer_id();
        let keys = Keypair::from_secret([10; 32]);
        let sig = keys.sign(&login_bytes(&server, b"n1", &keys.peer_id(), "m"));
        assert!(keys.peer_id().verify(&login_bytes(&server, b"n1", &keys.peer_id(), "m"), &sig));
        assert!(!keys.peer_id().verify(&login_bytes(&server, b"n2", &keys.peer_id(), "m"), &sig));
        assert!(!keys.peer_id().verify(&login_bytes(&server, b"n1", &keys.peer_id(), "other"), &sig));
        assert!(!keys.peer_id().verify(&login_bytes(&keys.peer_id(), b"n1", &keys.peer_id(), "m"), &sig));
    }
}

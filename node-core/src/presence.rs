//! What nodes tell a bootstrap server about themselves, and what the server vouches for in return:
//! signed presence announcements, and server-signed lists of live peers and trusted nodes.
//!
//! Everything is signed over its postcard encoding under its own domain, and the same structs
//! travel as JSON over HTTP (ids as text, signatures as hex), so a client rebuilds the signed bytes
//! from the JSON it received.

use crate::identity::{signed_bytes, Keypair, PeerId, Signature};
use crate::wire::{Capabilities, MAX_ADDRS, MAX_MESH_ID_LEN, MAX_NAME_LEN};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Domain tag of a node's presence announcement.
pub const PRESENCE_DOMAIN: &[u8] = b"weft/v1/presence\0";
/// Largest clock difference accepted between a presence announcement and the server.
pub const PRESENCE_CLOCK_WINDOW_MS: u64 = 2 * 60 * 1000;

/// How a NAT maps a node's outgoing flows to public ports (RFC 4787 terms).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatMapping {
    /// Not measured (yet).
    #[default]
    Unknown,
    /// No NAT: the node's own address is public.
    None,
    /// One public port per local port, whoever the destination (punchable).
    EndpointIndependent,
    /// A new public port per destination address.
    AddressDependent,
    /// A new public port per destination address and port ("symmetric").
    AddressAndPortDependent,
}

/// Which inbound packets a NAT lets through to a mapping (RFC 4787 terms).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatFiltering {
    /// Not measured (yet).
    #[default]
    Unknown,
    /// From anyone ("full cone").
    EndpointIndependent,
    /// From addresses the node has sent to.
    AddressDependent,
    /// From address-and-port pairs the node has sent to.
    AddressAndPortDependent,
}

/// A node's NAT behaviour as it measured it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NatInfo {
    /// Mapping behaviour.
    pub mapping: NatMapping,
    /// Filtering behaviour.
    pub filtering: NatFiltering,
}

/// What a node announces to a bootstrap server, signed by the node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The announcing node (and the key that signs).
    pub peer_id: PeerId,
    /// Display name.
    pub name: String,
    /// Which mesh the node is in; the server lists peers per mesh.
    pub mesh_id: String,
    /// Where the node listens, as it knows it (the server adds the address it saw).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["192.0.2.7:4000"])))]
    pub addrs: Vec<SocketAddr>,
    /// Its NAT behaviour.
    pub nat: NatInfo,
    /// What it can do.
    pub capabilities: Capabilities,
    /// When it signed, by its clock: the server refuses stale and replayed announcements.
    pub unix_ms: u64,
}

/// Why a signed statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// A field is longer than its limit.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Signed by another server than the pinned one.
    #[error("signed by server {got}, not the pinned {pinned}")]
    WrongServer {
        /// The pinned key.
        pinned: PeerId,
        /// The key that signed.
        got: PeerId,
    },
}

/// A [`Presence`] with the node's signature.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPresence {
    /// The announcement.
    pub presence: Presence,
    /// `presence.peer_id`'s signature over its postcard encoding.
    pub signature: Signature,
}

impl Presence {
    fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(PRESENCE_DOMAIN, &postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Signs with the node's key (which must be `peer_id`'s).
    pub fn sign(self, keys: &Keypair) -> SignedPresence {
        let signature = keys.sign(&self.signed_bytes());
        SignedPresence { presence: self, signature }
    }
}

impl SignedPresence {
    /// Checks limits and the node's signature (the clock and replay checks are the server's).
    pub fn verify(&self) -> Result<(), StatementError> {
        let p = &self.presence;
        if p.name.len() > MAX_NAME_LEN {
            return Err(StatementError::TooLong("name"));
        }
        if p.mesh_id.len() > MAX_MESH_ID_LEN {
            return Err(StatementError::TooLong("mesh_id"));
        }
        if p.addrs.len() > MAX_ADDRS {
            return Err(StatementError::TooLong("addrs"));
        }
        if !p.peer_id.verify(&p.signed_bytes(), &self.signature) {
            return Err(StatementError::BadSignature);
        }
        Ok(())
    }
}

/// The server's reply to an announcement.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceReply {
    /// Announce again within this many seconds to stay listed.
    pub reannounce_after_secs: u32,
    /// The address the server saw the announcement come from.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub observed_ip: IpAddr,
}

/// A live peer as a server lists it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePeer {
    /// The peer's announcement, as it signed it (so a client can check the peer's own word).
    pub presence: SignedPresence,
    /// The address the server saw it announce from.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub observed_ip: IpAddr,
}

/// The live peers of a mesh, as a server saw them at `unix_ms`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerList {
    /// The mesh.
    pub mesh_id: String,
    /// Its live peers, most recently announced first.
    pub peers: Vec<LivePeer>,
    /// When the server made the list.
    pub unix_ms: u64,
}

/// The nodes a server's operator trusts, as of `unix_ms`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedList {
    /// Trusted nodes.
    pub peers: Vec<PeerId>,
    /// When the server made the list.
    pub unix_ms: u64,
}

/// Something a server signs for its clients, with its own signing domain.
pub trait ServerStatement: Serialize + DeserializeOwned {
    /// Domain tag of the server's signature.
    const DOMAIN: &'static [u8];
}

impl ServerStatement for PeerList {
    const DOMAIN: &'static [u8] = b"weft/v1/peer-list\0";
}

impl ServerStatement for TrustedList {
    const DOMAIN: &'static [u8] = b"weft/v1/trusted-list\0";
}

/// A statement with the server's key and signature.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "T: ServerStatement")]
pub struct ServerSigned<T: ServerStatement> {
    /// What the server says.
    pub data: T,
    /// The server's key.
    pub server_key: PeerId,
    /// Its signature over `data`'s postcard encoding under `T::DOMAIN`.
    pub server_signature: Signature,
}

impl<T: ServerStatement> ServerSigned<T> {
    /// Signs `data` with the server's key.
    pub fn new(data: T, server: &Keypair) -> Self {
        let server_signature = server.sign(&Self::bytes(&data));
        ServerSigned { data, server_key: server.peer_id(), server_signature }
    }

    fn bytes(data: &T) -> Vec<u8> {
        signed_bytes(T::DOMAIN, &postcard::to_allocvec(data).unwrap_or_default())
    }

    /// Checks that `pinned` signed it.
    pub fn verify(&self, pinned: &PeerId) -> Result<&T, StatementError> {
        if self.server_key != *pinned {
            return Err(StatementError::WrongServer { pinned: *pinned, got: self.server_key });
        }
        if !pinned.verify(&Self::bytes(&self.data), &self.server_signature) {
            return Err(StatementError::BadSignature);
        }
        Ok(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(keys: &Keypair) -> SignedPresence {
        Presence {
            peer_id: keys.peer_id(),
            name: "alice".into(),
            mesh_id: "m".into(),
            addrs: vec!["127.0.0.1:4000".parse().unwrap()],
            nat: NatInfo::default(),
            capabilities: Capabilities(Capabilities::FILES),
            unix_ms: 7,
        }
        .sign(keys)
    }

    #[test]
    fn presence_verifies_through_json_and_not_when_tampered() {
        let keys = Keypair::from_secret([4; 32]);
        let signed = presence(&keys);
        let back: SignedPresence = serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
        assert_eq!(back.verify(), Ok(()));
        let mut moved = back.clone();
        moved.presence.addrs[0] = "10.0.0.1:4000".parse().unwrap();
        assert_eq!(moved.verify(), Err(StatementError::BadSignature));
        let mut long = back;
        long.presence.addrs = vec!["127.0.0.1:1".parse().unwrap(); MAX_ADDRS + 1];
        assert_eq!(long.verify(), Err(StatementError::TooLong("addrs")));
    }

    #[test]
    fn server_lists_verify_only_against_the_pinned_key() {
        let server = Keypair::from_secret([5; 32]);
        let node = Keypair::from_secret([6; 32]);
        let list = PeerList {
            mesh_id: "m".into(),
            peers: vec![LivePeer { presence: presence(&node), observed_ip: "127.0.0.1".parse().unwrap() }],
            unix_ms: 9,
        };
        let signed = ServerSigned::new(list, &server);
        let json = serde_json::to_string(&signed).unwrap();
        let back: ServerSigned<PeerList> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify(&server.peer_id()).map(|l| l.peers.len()), Ok(1));
        assert!(matches!(back.verify(&node.peer_id()), Err(StatementError::WrongServer { .. })));
        let mut padded = back;
        padded.data.unix_ms += 1;
        assert_eq!(padded.verify(&server.peer_id()), Err(StatementError::BadSignature));
        // Trusted lists are signed and checked the same way.
        let trusted = ServerSigned::new(TrustedList { peers: vec![node.peer_id()], unix_ms: 9 }, &server);
        assert_eq!(trusted.verify(&server.peer_id()).map(|t| t.peers.len()), Ok(1));
    }
}

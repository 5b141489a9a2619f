//! What stands between this node and the internet, learned from a STUN responder (the bootstrap
//! server's): RFC 5780 mapping and filtering behaviour, the NAT's port allocation (P2PD's
//! sampling), and the classic type they add up to. The probe is a sans-IO machine like the node:
//! the driver owns the sockets and the clock ([`probe::NatProbe`]); the wire format is in
//! [`stun`] (feature `stun`, for drivers and the server: it needs an OS random source, which the
//! browser build does without — browsers leave NAT traversal to ICE).

pub mod plan;
pub mod probe;
pub mod report;
#[cfg(feature = "stun")]
pub mod stun;

use core::net::SocketAddr;
use serde::{Deserialize, Serialize};

/// RFC 4787 mapping behaviour: on what the NAT's public address for a local socket depends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    /// The same public address whatever the destination: punchable.
    EndpointIndependent,
    /// A new public address per destination address.
    AddressDependent,
    /// A new public address per destination address and port ("symmetric").
    AddressAndPortDependent,
}

/// RFC 4787 filtering behaviour: who may send to a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Anyone.
    EndpointIndependent,
    /// Addresses the local socket has sent to.
    AddressDependent,
    /// Address and port pairs the local socket has sent to.
    AddressAndPortDependent,
}

/// How the NAT picks public ports for new mappings (what port prediction needs). Externally
/// tagged for serde, as reports travel in postcard envelopes (which cannot read tag fields);
/// `json` shows it as `{"kind", "delta"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortAllocation {
    /// The public port is the local port.
    Preserving,
    /// Each new mapping's port is the previous one's plus this.
    FixedDelta(i32),
    /// No pattern.
    Random,
}

/// The classic name for the behaviour, as users and the NAT lab know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatType {
    /// The STUN server saw our own address: no NAT (perhaps a firewall, see filtering).
    Open,
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    AddressRestricted,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestricted,
    /// Destination-dependent mapping.
    Symmetric,
    /// No answer from the STUN server at all.
    UdpBlocked,
}

impl PortAllocation {
    /// The kebab-case name used in JSON.
    pub fn kind(self) -> &'static str {
        match self {
            PortAllocation::Preserving => "preserving",
            PortAllocation::FixedDelta(_) => "fixed-delta",
            PortAllocation::Random => "random",
        }
    }
}

impl NatType {
    /// The kebab-case name used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            NatType::Open => "open",
            NatType::FullCone => "full-cone",
            NatType::AddressRestricted => "address-restricted",
            NatType::PortRestricted => "port-restricted",
            NatType::Symmetric => "symmetric",
            NatType::UdpBlocked => "udp-blocked",
        }
    }
}

/// What the probe learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatReport {
    /// The classic type.
    pub nat_type: NatType,
    /// Our address as the STUN server saw it.
    pub public: Option<SocketAddr>,
    /// `None` when the tests could not tell (no answer).
    pub mapping: Option<Mapping>,
    /// `None` when the tests could not tell.
    pub filtering: Option<Filtering>,
    /// `None` with fewer than [`probe::AGREE`] samples answered.
    pub allocation: Option<PortAllocation>,
    /// False when the server has no second address, so address-dependent and
    /// endpoint-independent behaviour could not be told apart (reported as the stricter one for
    /// filtering, the looser one for mapping).
    pub exact: bool,
}

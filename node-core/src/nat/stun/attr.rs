//! The STUN attributes stun-types lacks: RFC 5780's CHANGE-REQUEST, RESPONSE-PORT,
//! RESPONSE-ORIGIN and OTHER-ADDRESS, and RFC 5389's MAPPED-ADDRESS, on stun-types' public traits.

use std::net::SocketAddr;
use stun_types::attribute::{AttributeType, MappedSocketAddr, RawAttribute};
use stun_types::message::StunParseError;
use stun_types::prelude::*;

/// The address attributes all use MAPPED-ADDRESS's layout (RFC 5780 §7.1).
/// stun-types' `MappedSocketAddr` does the byte work.
macro_rules! address_attribute {
    ($(#[$doc:meta])* $name:ident = $code:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub SocketAddr);

        impl AttributeStaticType for $name {
            const TYPE: AttributeType = AttributeType::new($code);
        }
        impl Attribute for $name {
            fn get_type(&self) -> AttributeType {
                Self::TYPE
            }
            fn length(&self) -> u16 {
                MappedSocketAddr::new(self.0).length()
            }
        }
        impl AttributeWrite for $name {
            fn to_raw(&self) -> RawAttribute<'_> {
                MappedSocketAddr::new(self.0).to_raw(Self::TYPE).into_owned()
            }
            fn write_into_unchecked(&self, dest: &mut [u8]) {
                self.write_header_unchecked(dest);
                MappedSocketAddr::new(self.0).write_into_unchecked(&mut dest[4..]);
            }
        }
        impl AttributeFromRaw<'_> for $name {
            fn from_raw_ref(raw: &RawAttribute) -> Result<Self, StunParseError> {
                raw.check_type_and_len(Self::TYPE, ..)?;
                Ok(Self(MappedSocketAddr::from_raw(raw)?.addr()))
            }
        }
    };
}

address_attribute!(
    /// MAPPED-ADDRESS 0x0001. RFC 5780 §6.1: "The server MUST include both MAPPED-ADDRESS and
    /// XOR-MAPPED-ADDRESS in its Response."
    MappedAddress = 0x0001
);
address_attribute!(
    /// RESPONSE-ORIGIN 0x802B (comprehension-optional): the address the response was sent from.
    ResponseOrigin = 0x802B
);
address_attribute!(
    /// OTHER-ADDRESS 0x802C (comprehension-optional): Ca:Cp. Sent only when there is a second IP.
    OtherAddress = 0x802C
);

/// CHANGE-REQUEST 0x0003 (comprehension-required). The value is 32 bits, and only A (0x4,
/// change IP) and B (0x2, change port) are defined (RFC 5780 §7.2).
/// (stun_codec 0.4.0 decodes these as 0x2/0x1. That is a bug, and one reason not to use it.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeRequest {
    /// Answer from the other IP.
    pub change_ip: bool,
    /// Answer from the other port.
    pub change_port: bool,
}
impl ChangeRequest {
    /// Flag A: change IP.
    pub const CHANGE_IP: u32 = 0x4;
    /// Flag B: change port.
    pub const CHANGE_PORT: u32 = 0x2;
    fn bits(&self) -> u32 {
        (if self.change_ip { Self::CHANGE_IP } else { 0 }) | (if self.change_port { Self::CHANGE_PORT } else { 0 })
    }
    /// True if either flag is set.
    pub fn any(&self) -> bool {
        self.change_ip || self.change_port
    }
}
impl AttributeStaticType for ChangeRequest {
    const TYPE: AttributeType = AttributeType::new(0x0003);
}
impl Attribute for ChangeRequest {
    fn get_type(&self) -> AttributeType {
        Self::TYPE
    }
    fn length(&self) -> u16 {
        4
    }
}
impl AttributeWrite for ChangeRequest {
    fn to_raw(&self) -> RawAttribute<'_> {
        RawAttribute::new(Self::TYPE, &self.bits().to_be_bytes()).into_owned()
    }
    fn write_into_unchecked(&self, dest: &mut [u8]) {
        self.write_header_unchecked(dest);
        dest[4..8].copy_from_slice(&self.bits().to_be_bytes());
    }
}
impl AttributeFromRaw<'_> for ChangeRequest {
    fn from_raw_ref(raw: &RawAttribute) -> Result<Self, StunParseError> {
        raw.check_type_and_len(Self::TYPE, 4..=4)?;
        let v = u32::from_be_bytes([raw.value[0], raw.value[1], raw.value[2], raw.value[3]]);
        Ok(Self { change_ip: v & Self::CHANGE_IP != 0, change_port: v & Self::CHANGE_PORT != 0 })
    }
}

/// RESPONSE-PORT 0x0027 (comprehension-required): a 16-bit port and then 2 bytes of padding
/// (RFC 5780 §7.5).
/// turnutils_stunclient's RFC 5780 round sends it and waits on that port. A server without it
/// leaves that client waiting forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePort(pub u16);
impl AttributeStaticType for ResponsePort {
    const TYPE: AttributeType = AttributeType::new(0x0027);
}
impl Attribute for ResponsePort {
    fn get_type(&self) -> AttributeType {
        Self::TYPE
    }
    fn length(&self) -> u16 {
        4
    }
}
impl AttributeWrite for ResponsePort {
    fn to_raw(&self) -> RawAttribute<'_> {
        let b = self.0.to_be_bytes();
        RawAttribute::new(Self::TYPE, &[b[0], b[1], 0, 0]).into_owned()
    }
    fn write_into_unchecked(&self, dest: &mut [u8]) {
        self.write_header_unchecked(dest);
        dest[4..6].copy_from_slice(&self.0.to_be_bytes());
        dest[6..8].fill(0);
    }
}
impl AttributeFromRaw<'_> for ResponsePort {
    fn from_raw_ref(raw: &RawAttribute) -> Result<Self, StunParseError> {
        raw.check_type_and_len(Self::TYPE, 2..=4)?; // also accepts a 2-byte value
        Ok(Self(u16::from_be_bytes([raw.value[0], raw.value[1]])))
    }
}

/// PADDING 0x0026. We do not support it, so a request that carries it gets 420.
pub const PADDING: AttributeType = AttributeType::new(0x0026);

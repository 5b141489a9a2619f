//! The STUN wire format for binding requests and answers (RFC 5389, with RFC 5780's attributes in
//! [`attr`]), on the `stun-types` crate: what the probe's driver and the bootstrap server's
//! responder share. Transaction ids come from the caller, never from an RNG here.

pub mod attr;

use super::probe::{BindingRequest, BindingResponse};
use attr::{ChangeRequest, MappedAddress, OtherAddress, ResponseOrigin};
use std::net::SocketAddr;
use stun_types::attribute::{ErrorCode, XorMappedAddress};
use stun_types::message::{Message, MessageClass, MessageType, MessageWriteVec, TransactionId, BINDING};
use stun_types::prelude::*;

/// A binding request with transaction id `tid`, asking for `change` if given.
pub fn binding_request(tid: u128, change: Option<ChangeRequest>) -> Vec<u8> {
    let mtype = MessageType::from_class_method(MessageClass::Request, BINDING);
    let mut req = Message::builder(mtype, TransactionId::from(tid), MessageWriteVec::with_capacity(48));
    // Both attributes are fixed-size and fit any buffer the builder grows.
    if let Some(c) = change {
        let _ = req.add_attribute(&c);
    }
    let _ = req.add_fingerprint();
    req.finish()
}

/// What a binding response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingOutcome {
    /// Success.
    Success {
        /// The address the server saw.
        mapped: SocketAddr,
        /// OTHER-ADDRESS, when the server has a second IP.
        other: Option<SocketAddr>,
        /// RESPONSE-ORIGIN: where the answer came from.
        origin: Option<SocketAddr>,
    },
    /// An error response.
    Error {
        /// Its code (420: the server cannot honour CHANGE-REQUEST).
        code: u16,
    },
}

/// `None` means: not ours, not STUN, or malformed. Ignore it. RFC 5780 responses may come from
/// a different address than the one the request went to, so match on the transaction id only.
pub fn parse_binding_response(bytes: &[u8], tid: u128) -> Option<BindingOutcome> {
    let msg = Message::from_bytes(bytes).ok()?;
    if !msg.is_response() || !msg.has_method(BINDING) || msg.transaction_id() != TransactionId::from(tid) {
        return None;
    }
    if msg.has_class(MessageClass::Error) {
        return Some(BindingOutcome::Error { code: msg.attribute::<ErrorCode>().ok()?.code() });
    }
    let mapped = match msg.attribute::<XorMappedAddress>() {
        Ok(x) => x.addr(msg.transaction_id()),
        Err(_) => msg.attribute::<MappedAddress>().ok()?.0, // RFC 3489-style fallback
    };
    Some(BindingOutcome::Success {
        mapped,
        other: msg.attribute::<OtherAddress>().ok().map(|a| a.0),
        origin: msg.attribute::<ResponseOrigin>().ok().map(|a| a.0),
    })
}

/// The bytes of the probe's `request`.
pub fn encode_request(request: &BindingRequest) -> Vec<u8> {
    let change = ChangeRequest { change_ip: request.change.ip, change_port: request.change.port };
    binding_request(request.tid, change.any().then_some(change))
}

/// `bytes` as an answer the probe understands: its transaction id and outcome, or `None` if it
/// is not a binding answer.
pub fn decode_response(bytes: &[u8]) -> Option<(u128, BindingResponse)> {
    let msg = Message::from_bytes(bytes).ok()?;
    let tid = u128::from(msg.transaction_id());
    let outcome = parse_binding_response(bytes, tid)?;
    Some((
        tid,
        match outcome {
            BindingOutcome::Success { mapped, .. } => BindingResponse::Success { mapped },
            BindingOutcome::Error { code } => BindingResponse::Error { code },
        },
    ))
}

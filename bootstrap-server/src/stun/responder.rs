//! The responder's pure step: a datagram and where it came from in, the reply (bytes, which of our
//! sockets sends it, and to where) out. No sockets, clocks or RNG.
//!
//! RFC 5389 Binding (XOR-MAPPED-ADDRESS) plus RFC 5780 behaviour discovery: CHANGE-REQUEST,
//! RESPONSE-PORT, OTHER-ADDRESS, RESPONSE-ORIGIN.

use super::attr::{ChangeRequest, MappedAddress, OtherAddress, ResponseOrigin, ResponsePort};
use std::net::{IpAddr, SocketAddr};
use stun_types::attribute::{AttributeType, ErrorCode, Software, UnknownAttributes, XorMappedAddress};
use stun_types::message::{Message, MessageClass, MessageHeader, MessageWriteVec, StunParseError, BINDING};
use stun_types::prelude::*;

/// What the responder calls itself (SOFTWARE attribute).
pub const SOFTWARE: &str = concat!("weft-bootstrap/", env!("CARGO_PKG_VERSION"));

/// One of our (at most four) UDP sockets: {primary, alternate} IP × {primary, alternate} port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    /// On the alternate IP.
    pub alt_ip: bool,
    /// On the alternate port.
    pub alt_port: bool,
}

impl SocketId {
    /// The primary IP and port.
    pub const PRIMARY: Self = Self { alt_ip: false, alt_port: false };
    /// The socket across both axes: the source of OTHER-ADDRESS (Ca:Cp).
    pub fn other(self) -> Self {
        Self { alt_ip: !self.alt_ip, alt_port: !self.alt_port }
    }
}

/// The addresses the responder listens on and advertises. Bind concrete IPs, not 0.0.0.0: a
/// reply must leave from the right IP, and RESPONSE-ORIGIN and OTHER-ADDRESS must be true. Behind
/// 1:1 NAT, put the public IPs here and keep a separate bind map.
/// Tests on loopback can use A1 = 127.0.0.1 and A2 = 127.0.0.2. Linux binds all of 127/8.
#[derive(Debug, Clone, Copy)]
pub struct ServerAddrs {
    /// A1 (may be unspecified when there is no alternate IP).
    pub primary_ip: IpAddr,
    /// P1, default 3478.
    pub primary_port: u16,
    /// P2, e.g. 3479.
    pub alt_port: Option<u16>,
    /// A2. Only valid together with `alt_port` (RFC 5780 §6 needs the same port pair on both IPs).
    pub alt_ip: Option<IpAddr>,
    /// NOT in the RFC. With an alternate port but no alternate IP, honour change-port and still
    /// answer 420 to change-IP. RFC 5780 §6 says to answer 420 to any CHANGE-REQUEST. The default
    /// `false` is the strict behaviour. In neither mode is OTHER-ADDRESS sent without A2
    /// (§6, §7.4).
    pub change_port_without_alt_ip: bool,
}

impl ServerAddrs {
    /// Full RFC 5780: two IPs × two ports.
    pub fn full_rfc5780(&self) -> bool {
        self.alt_ip.is_some() && self.alt_port.is_some()
    }
    /// The socket address of `id`, or None if that socket does not exist in this configuration.
    pub fn addr(&self, id: SocketId) -> Option<SocketAddr> {
        let ip = if id.alt_ip { self.alt_ip? } else { self.primary_ip };
        let port = if id.alt_port { self.alt_port? } else { self.primary_port };
        Some(SocketAddr::new(ip, port))
    }
    /// The sockets the IO shell must bind.
    pub fn sockets(&self) -> Vec<(SocketId, SocketAddr)> {
        [false, true]
            .into_iter()
            .flat_map(|alt_ip| [false, true].into_iter().map(move |alt_port| SocketId { alt_ip, alt_port }))
            .filter_map(|id| self.addr(id).map(|a| (id, a)))
            .collect()
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response.
    pub bytes: Vec<u8>,
    /// Which of our sockets to send from (RFC 5780 §6.1 Table 1).
    pub send_from: SocketId,
    /// The client (or its RESPONSE-PORT).
    pub send_to: SocketAddr,
}

/// Comprehension-required types we "know". A request carrying any other type in 0x0000–0x7FFF gets
/// 420 with UNKNOWN-ATTRIBUTES (RFC 5389 §7.3.1). Known-but-unexpected types are ignored (§7.3).
/// PADDING (0x0026) is left out on purpose, so it gets 420.
const KNOWN_REQUIRED: &[AttributeType] = &[
    AttributeType::new(0x0001), // MAPPED-ADDRESS (unexpected in a request: ignore)
    AttributeType::new(0x0003), // CHANGE-REQUEST
    AttributeType::new(0x0006), // USERNAME (no auth on this server: ignore)
    AttributeType::new(0x0008), // MESSAGE-INTEGRITY (ignore)
    AttributeType::new(0x0020), // XOR-MAPPED-ADDRESS (unexpected: ignore)
    AttributeType::new(0x0027), // RESPONSE-PORT
];

/// The responder's pure step. Returns `None` to drop silently: not STUN, malformed, a bad
/// FINGERPRINT, not a Binding *request*, or an `arrived_on` socket this configuration lacks
/// (RFC 5389 §7.3).
/// Never panics on any input.
pub fn respond(request: &[u8], from: SocketAddr, arrived_on: SocketId, addrs: &ServerAddrs) -> Option<Reply> {
    let from = unmap_v4(from);
    addrs.addr(arrived_on)?; // a socket we do not have: configuration bug, drop

    // RFC 5389 §6/§7.3 basic checks. MessageHeader::from_bytes checks the top two bits and the
    // magic cookie. stun-types' Message::from_bytes parses past the declared length, so we require
    // the exact datagram length and 4-byte alignment here.
    let header = MessageHeader::from_bytes(request).ok()?;
    let body_len = header.data_length() as usize;
    if body_len % 4 != 0 || request.len() != MessageHeader::LENGTH + body_len {
        return None;
    }
    // Checks attribute framing and FINGERPRINT (if present). Returns Err, never panics (fuzzed upstream).
    let msg = Message::from_bytes(request).ok()?;
    if !msg.has_class(MessageClass::Request) || !msg.has_method(BINDING) {
        return None; // indications, responses and other methods: silently discarded
    }

    // RESPONSE-PORT first, because it decides where error responses go too.
    // turnutils_stunclient -f waits on RESPONSE-PORT even for the 420.
    let response_port = match msg.attribute::<ResponsePort>() {
        Ok(ResponsePort(0)) => return error(&msg, 400, "Bad Request: RESPONSE-PORT 0", &[], from, arrived_on),
        Ok(ResponsePort(p)) => Some(p),
        Err(StunParseError::MissingAttribute(_)) => None,
        Err(_) => return error(&msg, 400, "Bad Request: malformed RESPONSE-PORT", &[], from, arrived_on),
    };
    let send_to = SocketAddr::new(from.ip(), response_port.unwrap_or(from.port()));

    // Unknown comprehension-required attributes → 420 + UNKNOWN-ATTRIBUTES (RFC 5389 §7.3.1, §15.9).
    let mut unknown: Vec<AttributeType> = Vec::new();
    for (_offset, a) in msg.iter_attributes() {
        let t = a.get_type();
        if t.comprehension_required() && !KNOWN_REQUIRED.contains(&t) && !unknown.contains(&t) {
            unknown.push(t);
        }
    }
    if !unknown.is_empty() {
        return error(&msg, 420, "Unknown Attribute", &unknown, send_to, arrived_on);
    }

    let change = match msg.attribute::<ChangeRequest>() {
        Ok(c) => c,
        Err(StunParseError::MissingAttribute(_)) => ChangeRequest::default(),
        Err(_) => return error(&msg, 400, "Bad Request: malformed CHANGE-REQUEST", &[], send_to, arrived_on),
    };
    // RFC 5780 §6: with no second IP, "MUST respond with a 420 (Unknown Attribute) to any Request
    // with a CHANGE-REQUEST attribute". Like coturn, we still accept an all-zero CHANGE-REQUEST:
    // some old clients (JSTUN/Stuntman) always send one.
    let can_change = if addrs.full_rfc5780() {
        true
    } else {
        !change.change_ip && addrs.change_port_without_alt_ip && addrs.alt_port.is_some()
    };
    if change.any() && !can_change {
        return error(
            &msg,
            420,
            "Unknown Attribute: CHANGE-REQUEST unsupported here",
            &[ChangeRequest::TYPE],
            send_to,
            arrived_on,
        );
    }

    // RFC 5780 §6.1 Table 1: the source is (Da or Ca, Dp or Cp) by the flags.
    let send_from =
        SocketId { alt_ip: arrived_on.alt_ip ^ change.change_ip, alt_port: arrived_on.alt_port ^ change.change_port };
    let origin = addrs.addr(send_from)?; // exists: can_change checked above
                                         // OTHER-ADDRESS = Ca:Cp, whatever the flags. Only with a second IP (§6, §7.4).
    let other = if addrs.full_rfc5780() { addrs.addr(arrived_on.other()) } else { None };

    let tid = msg.transaction_id();
    let mut out = Message::builder_success(&msg, MessageWriteVec::with_capacity(128)); // same tid and method
    out.add_attribute(&XorMappedAddress::new(from, tid)).ok()?;
    out.add_attribute(&MappedAddress(from)).ok()?;
    // §6.1: MUST. A socket bound to the unspecified address does not know which of the host's
    // addresses the client reached, and a wrong origin is worse than none.
    if !origin.ip().is_unspecified() {
        out.add_attribute(&ResponseOrigin(origin)).ok()?;
    }
    if let Some(o) = other {
        out.add_attribute(&OtherAddress(o)).ok()?; // §6.1: MUST when there is an alternate address
    }
    out.add_attribute(&Software::new(SOFTWARE).ok()?).ok()?; // RFC 5389 §7.3.1.1: SHOULD
    out.add_fingerprint().ok()?; // last; optional but harmless (turnutils_stunclient accepts it)
    Some(Reply { bytes: out.finish(), send_from, send_to })
}

/// An error response is sent from the socket the request arrived on (Da:Dp), to `to`.
fn error(
    req: &Message<'_>,
    code: u16,
    reason: &str,
    unknown: &[AttributeType],
    to: SocketAddr,
    arrived_on: SocketId,
) -> Option<Reply> {
    let mut out = Message::builder_error(req, MessageWriteVec::with_capacity(96)); // caller made sure req is a Request
    out.add_attribute(&ErrorCode::new(code, reason).ok()?).ok()?;
    if !unknown.is_empty() {
        out.add_attribute(&UnknownAttributes::new(unknown)).ok()?; // RFC 5389 §7.3.1.1: MUST with 420
    }
    out.add_attribute(&Software::new(SOFTWARE).ok()?).ok()?;
    out.add_fingerprint().ok()?;
    Some(Reply { bytes: out.finish(), send_from: arrived_on, send_to: to })
}

/// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. Report them as IPv4.
fn unmap_v4(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::super::attr::ChangeRequest;
    use super::super::client::{binding_request, parse_binding_response, BindingOutcome};
    use super::*;
    use stun_types::attribute::RawAttribute;
    use stun_types::message::{MessageType, TransactionId};

    fn full() -> ServerAddrs {
        ServerAddrs {
            primary_ip: "127.0.0.1".parse().unwrap(),
            primary_port: 3478,
            alt_port: Some(3479),
            alt_ip: Some("127.0.0.2".parse().unwrap()),
            change_port_without_alt_ip: false,
        }
    }

    fn port_only() -> ServerAddrs {
        ServerAddrs { alt_ip: None, ..full() }
    }
    const CLIENT: &str = "127.0.0.1:50000";

    #[test]
    fn change_request_wire_bits() {
        let a = ChangeRequest { change_ip: true, change_port: false };
        assert_eq!(a.to_raw().to_bytes(), [0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x04]);
        let b = ChangeRequest { change_ip: false, change_port: true };
        assert_eq!(b.to_raw().to_bytes(), [0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x02]);
    }

    #[test]
    fn plain_binding_gets_all_attributes_from_same_socket() {
        let req = binding_request(42, None);
        let r = respond(&req, CLIENT.parse().unwrap(), SocketId::PRIMARY, &full()).unwrap();
        assert_eq!(r.send_from, SocketId::PRIMARY);
        assert_eq!(r.send_to, CLIENT.parse().unwrap());
        match parse_binding_response(&r.bytes, 42).unwrap() {
            BindingOutcome::Success { mapped, other, origin } => {
                assert_eq!(mapped, CLIENT.parse().unwrap());
                assert_eq!(other, Some("127.0.0.2:3479".parse().unwrap()));
                assert_eq!(origin, Some("127.0.0.1:3478".parse().unwrap()));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn table_1() {
        for (ip, port, want) in [
            (false, false, "127.0.0.1:3478"),
            (true, false, "127.0.0.2:3478"),
            (false, true, "127.0.0.1:3479"),
            (true, true, "127.0.0.2:3479"),
        ] {
            let req = binding_request(7, Some(ChangeRequest { change_ip: ip, change_port: port }));
            let r = respond(&req, CLIENT.parse().unwrap(), SocketId::PRIMARY, &full()).unwrap();
            assert_eq!(full().addr(r.send_from), Some(want.parse().unwrap()));
        }
    }

    #[test]
    fn change_without_second_ip_is_420_and_no_other_address() {
        let req = binding_request(9, Some(ChangeRequest { change_ip: false, change_port: true }));
        let r = respond(&req, CLIENT.parse().unwrap(), SocketId::PRIMARY, &port_only()).unwrap();
        assert_eq!(parse_binding_response(&r.bytes, 9), Some(BindingOutcome::Error { code: 420 }));
        let r = respond(&binding_request(10, None), CLIENT.parse().unwrap(), SocketId::PRIMARY, &port_only()).unwrap();
        assert!(matches!(parse_binding_response(&r.bytes, 10), Some(BindingOutcome::Success { other: None, .. })));
    }

    #[test]
    fn garbage_is_dropped_without_panic() {
        let from = CLIENT.parse().unwrap();
        let good = binding_request(1, None);
        let mut bad_fp = good.clone();
        *bad_fp.last_mut().unwrap() ^= 1;
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 4]);
        for d in [&b""[..], &[0u8; 19], &[0xff; 64], &good[..19], &bad_fp, &trailing] {
            assert_eq!(respond(d, from, SocketId::PRIMARY, &full()), None);
        }
        // also: a proptest with arbitrary Vec<u8> → respond() must not panic
    }

    fn request_with_raw(tid: u128, attr_type: u16) -> Vec<u8> {
        let mtype = MessageType::from_class_method(MessageClass::Request, BINDING);
        let mut req = Message::builder(mtype, TransactionId::from(tid), MessageWriteVec::with_capacity(48));
        req.add_attribute(&RawAttribute::new(AttributeType::new(attr_type), &[1, 2, 3, 4])).unwrap();
        req.finish()
    }

    #[test]
    fn unknown_comprehension_required_gets_420_listing_it() {
        let from = CLIENT.parse().unwrap();
        let r = respond(&request_with_raw(11, 0x7ff0), from, SocketId::PRIMARY, &full()).unwrap();
        assert_eq!(parse_binding_response(&r.bytes, 11), Some(BindingOutcome::Error { code: 420 }));
        let msg = Message::from_bytes(&r.bytes).unwrap();
        let unknown = msg.attribute::<UnknownAttributes>().unwrap();
        assert!(unknown.has_attribute(AttributeType::new(0x7ff0)));
        // Comprehension-optional attributes are ignored.
        let r = respond(&request_with_raw(12, 0xfff0), from, SocketId::PRIMARY, &full()).unwrap();
        assert!(matches!(parse_binding_response(&r.bytes, 12), Some(BindingOutcome::Success { .. })));
    }

    #[test]
    fn change_port_only_is_honoured_as_an_extension_and_change_ip_still_refused() {
        let addrs = ServerAddrs { change_port_without_alt_ip: true, ..port_only() };
        let from = CLIENT.parse().unwrap();
        let port = binding_request(13, Some(ChangeRequest { change_ip: false, change_port: true }));
        let r = respond(&port, from, SocketId::PRIMARY, &addrs).unwrap();
        assert_eq!(addrs.addr(r.send_from), Some("127.0.0.1:3479".parse().unwrap()));
        assert!(matches!(parse_binding_response(&r.bytes, 13), Some(BindingOutcome::Success { other: None, .. })));
        let ip = binding_request(14, Some(ChangeRequest { change_ip: true, change_port: false }));
        let r = respond(&ip, from, SocketId::PRIMARY, &addrs).unwrap();
        assert_eq!(parse_binding_response(&r.bytes, 14), Some(BindingOutcome::Error { code: 420 }));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = respond(&bytes, CLIENT.parse().unwrap(), SocketId::PRIMARY, &full());
        }

        #[test]
        fn any_attribute_body_never_panics(kind in 0u16..=0xffff, body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            // The builder refuses (by panicking) to write MESSAGE-INTEGRITY(-SHA256) or
            // FINGERPRINT as plain attributes; the responder meets those through the raw-bytes
            // test above.
            proptest::prop_assume!(![0x0008, 0x001c, 0x8028].contains(&kind));
            let mtype = MessageType::from_class_method(MessageClass::Request, BINDING);
            let mut req = Message::builder(mtype, TransactionId::from(5u128), MessageWriteVec::with_capacity(64));
            if req.add_attribute(&RawAttribute::new(AttributeType::new(kind), &body)).is_ok() {
                let _ = respond(&req.finish(), CLIENT.parse().unwrap(), SocketId::PRIMARY, &full());
            }
        }
    }
}

//! The NAT behaviour probe (RFC 5780 §4, plus P2PD's port-allocation sampling) as a sans-IO
//! machine. The driver binds [`SOCKETS`] UDP sockets, sends each [`BindingRequest`] from
//! [`NatProbe::poll_transmit`] on the socket it names, feeds answers to
//! [`NatProbe::handle_response`] and wakes it at [`NatProbe::poll_timeout`]. Three chains run side
//! by side, each with one request in flight:
//!
//! - mapping, on socket [`MAP_SOCKET`]: the primary address, then the alternate address (and the
//!   alternate address's other port when the mapping changed), comparing the public addresses;
//! - filtering, on socket [`FILTER_SOCKET`], which only ever sends to the primary address (a
//!   packet to the alternate address would open the very filter under test): ask for the answer
//!   from the other address and port, then from the other port; which arrive says the filter;
//! - allocation, on sockets [`SAMPLE_SOCKETS`]: one binding each, in order; at least
//!   [`AGREE`] of the [`SAMPLES`] must show the same pattern (preserved ports, or one delta).

use super::{Filtering, Mapping, NatReport, NatType, PortAllocation};
use crate::time::Instant;
use core::net::{IpAddr, SocketAddr};
use core::ops::Range;
use core::time::Duration;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Sockets the driver binds for one probe.
pub const SOCKETS: usize = 10;
/// The mapping tests' socket.
pub const MAP_SOCKET: usize = 0;
/// The filtering tests' socket.
pub const FILTER_SOCKET: usize = 1;
/// The port-allocation samples' sockets.
pub const SAMPLE_SOCKETS: Range<usize> = 2..SOCKETS;
/// Port-allocation samples taken.
pub const SAMPLES: usize = SOCKETS - 2;
/// Samples that must agree on a pattern.
pub const AGREE: usize = 5;

/// The STUN responder to probe against (from the bootstrap server's `/v1/info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunTarget {
    /// Where binding requests go.
    pub primary: SocketAddr,
    /// The responder's second port (RFC 5780 change-port answers come from it).
    pub alt_port: Option<u16>,
    /// The responder's second address, when it has one.
    pub alt_ip: Option<IpAddr>,
}

/// RFC 5780 CHANGE-REQUEST flags: where the answer should come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Change {
    /// Answer from the server's other address.
    pub ip: bool,
    /// Answer from the server's other port.
    pub port: bool,
}

/// One binding request for the driver to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest {
    /// Which of the [`SOCKETS`] to send from.
    pub socket: usize,
    /// The responder address to send to.
    pub to: SocketAddr,
    /// The 96-bit STUN transaction id.
    pub tid: u128,
    /// Where the answer should come from.
    pub change: Change,
}

/// A binding answer, decoded by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingResponse {
    /// The responder saw us at `mapped`.
    Success {
        /// Our public address (XOR-MAPPED-ADDRESS).
        mapped: SocketAddr,
    },
    /// An error answer (420: the server cannot change its address).
    Error {
        /// The STUN error code.
        code: u16,
    },
}

/// The responder answered the plain binding request with an error: UDP gets through, but this
/// responder tells us nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the STUN responder refused a plain binding request (error {code})")]
pub struct ProbeRefused {
    /// The STUN error code.
    pub code: u16,
}

/// Retransmission timing for one request.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTiming {
    /// Delays after the first send at which the request is sent again.
    pub resend_after: [Duration; 2],
    /// After this long without an answer the request counts as unanswered (for the filtering
    /// tests that is the finding: the NAT dropped the answer).
    pub give_up_after: Duration,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            resend_after: [Duration::from_millis(250), Duration::from_millis(750)],
            give_up_after: Duration::from_millis(1500),
        }
    }
}

/// What each test step asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Mapping test I: the primary address.
    Primary,
    /// Mapping test II: the alternate address (primary port), or the primary address's
    /// alternate port when there is no second address.
    MapOther,
    /// Mapping test III: the alternate address and port.
    MapOtherBoth,
    /// Filtering test II: answer from the other address and port.
    FilterBoth,
    /// Filtering test III: answer from the other port.
    FilterPort,
    /// Port-allocation sample `n`.
    Sample(usize),
}

#[derive(Debug)]
struct Exchange {
    step: Step,
    request: BindingRequest,
    first_sent: Instant,
    resends: usize,
}

/// The probe's state.
#[derive(Debug)]
pub struct NatProbe {
    target: StunTarget,
    timing: ProbeTiming,
    local_ips: Vec<IpAddr>,
    local_ports: [u16; SOCKETS],
    rng: ChaCha8Rng,
    /// At most one exchange per chain: mapping, filtering, allocation.
    in_flight: Vec<Exchange>,
    outbox: Vec<BindingRequest>,
    m1: Option<SocketAddr>,
    m2: Option<SocketAddr>,
    mapping: Option<Mapping>,
    filtering: Option<Filtering>,
    samples: Vec<Option<u16>>,
    primary_failed: bool,
    /// The responder answered the first binding with this error: it works, but not for us.
    primary_refused: Option<u16>,
    mapping_done: bool,
    filtering_done: bool,
    /// The server answered a CHANGE-REQUEST from the wrong address: filtering unknown.
    change_ignored: bool,
}

impl NatProbe {
    /// A probe against `target` from sockets bound to `local_ports` on a host whose addresses
    /// are `local_ips` (to recognise "no NAT"). Starts at once.
    pub fn new(
        target: StunTarget,
        local_ips: Vec<IpAddr>,
        local_ports: [u16; SOCKETS],
        timing: ProbeTiming,
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut probe = NatProbe {
            target,
            timing,
            local_ips,
            local_ports,
            rng: ChaCha8Rng::seed_from_u64(seed),
            in_flight: Vec::new(),
            outbox: Vec::new(),
            m1: None,
            m2: None,
            mapping: None,
            filtering: None,
            samples: Vec::new(),
            primary_failed: false,
            primary_refused: None,
            mapping_done: false,
            filtering_done: false,
            change_ignored: false,
        };
        probe.start(now, Step::Primary);
        probe
    }

    /// The next request to send, if any.
    pub fn poll_transmit(&mut self) -> Option<BindingRequest> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(self.outbox.remove(0))
        }
    }

    /// When to call [`Self::handle_timeout`]; `None` once the probe is finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.iter().map(|x| self.deadline(x)).min()
    }

    /// The report, once every test has an answer or gave up; an error when the responder
    /// refused the plain binding request (UDP works, but there is nothing to learn from it).
    pub fn result(&self) -> Option<Result<NatReport, ProbeRefused>> {
        if let Some(code) = self.primary_refused {
            return Some(Err(ProbeRefused { code }));
        }
        self.report()
    }

    fn report(&self) -> Option<Result<NatReport, ProbeRefused>> {
        if self.primary_failed {
            return Some(Ok(NatReport {
                nat_type: NatType::UdpBlocked,
                public: None,
                mapping: None,
                filtering: None,
                allocation: None,
                exact: self.target.alt_ip.is_some(),
            }));
        }
        if !self.mapping_done || !self.filtering_done || self.samples.len() < SAMPLES {
            return None;
        }
        let public = self.m1?;
        let open = public.port() == self.local_ports[MAP_SOCKET] && self.local_ips.contains(&public.ip());
        let nat_type = match (open, self.mapping, self.filtering) {
            (true, _, _) => NatType::Open,
            (false, Some(Mapping::EndpointIndependent), Some(Filtering::EndpointIndependent)) => NatType::FullCone,
            (false, Some(Mapping::EndpointIndependent), Some(Filtering::AddressDependent)) => {
                NatType::AddressRestricted
            }
            (false, Some(Mapping::EndpointIndependent), _) => NatType::PortRestricted,
            (false, _, _) => NatType::Symmetric,
        };
        Some(Ok(NatReport {
            nat_type,
            public: Some(public),
            mapping: self.mapping,
            filtering: self.filtering,
            allocation: self.allocation(),
            exact: self.target.alt_ip.is_some() && !self.change_ignored,
        }))
    }

    /// An answer on `socket` with transaction id `tid`, from `from`; anything not awaited is
    /// ignored.
    pub fn handle_response(
        &mut self,
        now: Instant,
        socket: usize,
        tid: u128,
        from: SocketAddr,
        response: BindingResponse,
    ) {
        let Some(i) = self.in_flight.iter().position(|x| x.request.tid == tid && x.request.socket == socket) else {
            return;
        };
        let exchange = self.in_flight.swap_remove(i);
        // A filtering answer proves something only if it came from where we asked: a server
        // that ignores CHANGE-REQUEST answers from its primary address, which any NAT lets in.
        let t = self.target;
        let expected_from = match exchange.step {
            Step::FilterBoth => t.alt_ip.zip(t.alt_port).map(|(ip, port)| SocketAddr::new(ip, port)),
            Step::FilterPort => t.alt_port.map(|port| SocketAddr::new(t.primary.ip(), port)),
            _ => None,
        };
        let honoured = matches!(response, BindingResponse::Error { .. }) || expected_from.is_none_or(|e| e == from);
        if !honoured {
            self.change_ignored = true;
            self.filtering_done = true;
            return;
        }
        self.finished(now, exchange.step, Some(response));
    }

    /// Resends what is due and gives up on what waited too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            let x = &mut self.in_flight[i];
            let waited = now - x.first_sent;
            if waited >= self.timing.give_up_after {
                expired.push(self.in_flight.swap_remove(i).step);
                continue;
            }
            if x.resends < self.timing.resend_after.len() && waited >= self.timing.resend_after[x.resends] {
                x.resends += 1;
                self.outbox.push(x.request);
            }
            i += 1;
        }
        for step in expired {
            self.finished(now, step, None);
        }
    }

    fn deadline(&self, x: &Exchange) -> Instant {
        match self.timing.resend_after.get(x.resends) {
            Some(after) => x.first_sent + *after,
            None => x.first_sent + self.timing.give_up_after,
        }
    }

    fn start(&mut self, now: Instant, step: Step) {
        let t = self.target;
        let alt_ip = t.alt_ip.unwrap_or(t.primary.ip());
        let alt_port = t.alt_port.unwrap_or(t.primary.port());
        let (socket, to, change) = match step {
            Step::Primary => (MAP_SOCKET, t.primary, Change::default()),
            Step::MapOther if t.alt_ip.is_some() => {
                (MAP_SOCKET, SocketAddr::new(alt_ip, t.primary.port()), Change::default())
            }
            Step::MapOther => (MAP_SOCKET, SocketAddr::new(t.primary.ip(), alt_port), Change::default()),
            Step::MapOtherBoth => (MAP_SOCKET, SocketAddr::new(alt_ip, alt_port), Change::default()),
            Step::FilterBoth => (FILTER_SOCKET, t.primary, Change { ip: true, port: true }),
            Step::FilterPort => (FILTER_SOCKET, t.primary, Change { ip: false, port: true }),
            Step::Sample(n) => (SAMPLE_SOCKETS.start + n, t.primary, Change::default()),
        };
        let tid = (u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64())) & ((1 << 96) - 1);
        let request = BindingRequest { socket, to, tid, change };
        self.outbox.push(request);
        self.in_flight.push(Exchange { step, request, first_sent: now, resends: 0 });
    }

    /// A step got its answer (or `None`: gave up); start what follows from it.
    fn finished(&mut self, now: Instant, step: Step, response: Option<BindingResponse>) {
        let mapped = match response {
            Some(BindingResponse::Success { mapped }) => Some(mapped),
            _ => None,
        };
        match step {
            Step::Primary => match (mapped, response) {
                (None, Some(BindingResponse::Error { code })) => {
                    self.primary_refused = Some(code);
                    self.in_flight.clear();
                    self.outbox.clear();
                }
                (None, _) => {
                    self.primary_failed = true;
                    self.in_flight.clear();
                    self.outbox.clear();
                }
                (Some(m1), _) => {
                    self.m1 = Some(m1);
                    let other_exists = self.target.alt_ip.is_some() || self.target.alt_port.is_some();
                    if other_exists {
                        self.start(now, Step::MapOther);
                        self.start(now, if self.target.alt_ip.is_some() { Step::FilterBoth } else { Step::FilterPort });
                    } else {
                        // Nothing to compare with: call it what most NATs are and say it is a guess.
                        self.mapping = Some(Mapping::EndpointIndependent);
                        self.filtering = Some(Filtering::AddressAndPortDependent);
                        self.mapping_done = true;
                        self.filtering_done = true;
                    }
                    self.start(now, Step::Sample(0));
                }
            },
            Step::MapOther => match mapped {
                Some(m2) if Some(m2) == self.m1 => self.map_found(Mapping::EndpointIndependent),
                Some(m2) if self.target.alt_ip.is_some() => {
                    self.m2 = Some(m2);
                    self.start(now, Step::MapOtherBoth);
                }
                Some(_) => self.map_found(Mapping::AddressAndPortDependent),
                None => self.mapping_done = true,
            },
            Step::MapOtherBoth => match mapped {
                Some(m3) if Some(m3) == self.m2 => self.map_found(Mapping::AddressDependent),
                Some(_) => self.map_found(Mapping::AddressAndPortDependent),
                None => self.mapping_done = true,
            },
            Step::FilterBoth => match response {
                Some(BindingResponse::Success { .. }) => self.filter_found(Filtering::EndpointIndependent),
                _ => self.start(now, Step::FilterPort),
            },
            Step::FilterPort => match response {
                Some(BindingResponse::Success { .. }) => self.filter_found(Filtering::AddressDependent),
                Some(BindingResponse::Error { .. }) => self.filtering_done = true,
                None => self.filter_found(Filtering::AddressAndPortDependent),
            },
            Step::Sample(n) => {
                self.samples.push(mapped.map(|m| m.port()));
                if n + 1 < SAMPLES {
                    self.start(now, Step::Sample(n + 1));
                }
            }
        }
    }

    fn map_found(&mut self, mapping: Mapping) {
        self.mapping = Some(mapping);
        self.mapping_done = true;
    }

    fn filter_found(&mut self, filtering: Filtering) {
        self.filtering = Some(filtering);
        self.filtering_done = true;
    }

    /// P2PD's rule: [`AGREE`] samples preserving their local port, or [`AGREE`] consecutive
    /// samples one delta apart; else random. `None` with too few answers to say.
    fn allocation(&self) -> Option<PortAllocation> {
        let answered = self.samples.iter().filter(|s| s.is_some()).count();
        if answered < AGREE {
            return None;
        }
        let preserved = self
            .samples
            .iter()
            .enumerate()
            .filter(|(n, s)| **s == Some(self.local_ports[SAMPLE_SOCKETS.start + n]))
            .count();
        if preserved >= AGREE {
            return Some(PortAllocation::Preserving);
        }
        let deltas: Vec<i32> = self
            .samples
            .windows(2)
            .filter_map(|w| match (w[0], w[1]) {
                (Some(a), Some(b)) => Some(i32::from(b) - i32::from(a)),
                _ => None,
            })
            .collect();
        // AGREE samples in a row make AGREE - 1 equal deltas.
        let best = deltas.iter().map(|d| (d, deltas.iter().filter(|e| *e == d).count())).max_by_key(|(_, n)| *n);
        match best {
            Some((&d, n)) if n + 1 >= AGREE && d != 0 => Some(PortAllocation::FixedDelta(d)),
            _ => Some(PortAllocation::Random),
        }
    }
}

#[cfg(test)]
mod tests;

//! Per-address rate limits for the API: a token bucket per client address (per /64 for IPv6, so
//! one host cannot dodge it by hopping addresses), answering 429 with `Retry-After`.

use crate::api::ErrorBody;
use crate::client_ip::client_ip;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

/// A sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: NonZeroU32,
    /// Requests allowed at once.
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    /// 20 requests per second with bursts of 60: far above what a node needs (it announces once a
    /// minute), far below what a flood sends.
    fn default() -> Self {
        const PER_SECOND: NonZeroU32 = NonZeroU32::new(20).unwrap();
        const BURST: NonZeroU32 = NonZeroU32::new(60).unwrap();
        RateLimit { per_second: PER_SECOND, burst: BURST }
    }
}

/// The limiter: one bucket per client address.
pub struct RateLimiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RateLimiter {
    /// A limiter enforcing `limit` per address.
    pub fn new(limit: RateLimit) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        RateLimiter { buckets: governor::RateLimiter::keyed(quota), clock: DefaultClock::default() }
    }

    /// Takes one request from `ip`'s bucket; on refusal, how many whole seconds to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.buckets.check_key(&bucket_of(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets addresses whose buckets are full again, so the map stays as small as the set of
    /// recently active clients.
    pub fn shrink(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }
}

/// The key an address is limited under: itself for IPv4, its /64 for IPv6.
fn bucket_of(ip: IpAddr) -> IpAddr {
    match crate::client_ip::canonical(ip) {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        v4 => v4,
    }
}

/// The middleware: lets the request through or answers 429.
pub async fn limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(limiter) = &st.limiter else { return next.run(req).await };
    let (parts, body) = req.into_parts();
    let ip = client_ip(&parts, st.config.behind_proxy);
    let req = Request::from_parts(parts, body);
    let Some(ip) = ip else { return next.run(req).await };
    match limiter.check(ip) {
        Ok(()) => next.run(req).await,
        Err(wait_secs) => {
            st.metrics.rate_limited.inc();
            let message = format!("too many requests from {ip}; retry in {wait_secs} s");
            let mut resp = ErrorBody::response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
            resp.headers_mut().insert("retry-after", HeaderValue::from(wait_secs.max(1)));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_of(a), bucket_of(b));
        assert_ne!(bucket_of(a), bucket_of(c));
        assert_eq!(bucket_of("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let one = NonZeroU32::MIN;
        let limiter = RateLimiter::new(RateLimit { per_second: one, burst: NonZeroU32::new(3).unwrap() });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip), Ok(()));
        }
        assert_eq!(limiter.check(ip), Err(1));
        assert_eq!(limiter.check("10.0.0.2".parse().unwrap()), Ok(()));
    }
}

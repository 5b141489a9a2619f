//! # weft-bootstrap — the bootstrap, name and signaling server
//!
//! A small server that anyone can self-host so that Weft nodes across the internet can meet:
//!
//! - names ([`registry`] rules as pure functions of `now`, [`db`] storage in SQLite, [`api::names`],
//!   signed [`answers`] cached);
//! - presence and trust ([`presence`] table, [`api::presence`]: announce, live peers, trusted nodes);
//! - signaling ([`signal`]) and relay ([`relay`]) websockets, sharing the challenge login of
//!   [`session`];
//! - a STUN responder ([`stun`], RFC 5389 + RFC 5780);
//! - operations: per-address [`ratelimit`]s, Prometheus [`metrics`], the [`openapi`] document,
//!   client addresses behind a proxy ([`client_ip`]).
//!
//! [`server::run`] serves it all; `weft-bootstrap` (src/main.rs) is the binary.
#![deny(missing_docs)]

pub mod answers;
pub mod api;
pub mod client_ip;
pub mod db;
pub mod keyfile;
pub mod metrics;
pub mod openapi;
pub mod presence;
pub mod ratelimit;
pub mod registry;
pub mod relay;
pub mod server;
pub mod session;
pub mod signal;
pub mod stun;

pub use server::{router, run, system_clock, AppState, Clock, ServerConfig};

//! # weft-bootstrap — the bootstrap, name and signaling server
//!
//! Work in progress (issue 3). Here now: the name registry — rules as pure functions of `now`
//! ([`registry`]), SQLite storage ([`db`]), the HTTP API ([`api`]: `GET /healthz`, `GET /v1/info`,
//! `GET`/`PUT /v1/names/{name}`), and the server loop ([`server::run`]). Still to come: presence,
//! trust, signaling, STUN, relay, metrics, OpenAPI, rate limits and the node-side clients.
#![deny(missing_docs)]

pub mod api;
pub mod db;
pub mod keyfile;
pub mod registry;
pub mod server;

pub use server::{router, run, system_clock, AppState, Clock};

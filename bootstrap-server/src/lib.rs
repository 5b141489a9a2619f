//! # weft-bootstrap — the bootstrap, name and signaling server
//!
//! Work in progress (issue 3). What is here: [`registry`], the name rules as pure functions that
//! take `now` — ownership, replay, quotas per IP and prefix, lifetimes — so they are tested
//! without a database. The HTTP server, storage, signaling, STUN and relay build on it.
#![deny(missing_docs)]

pub mod registry;

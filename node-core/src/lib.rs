//! # node-core — Weft's protocol, sans IO
//!
//! Everything a Weft peer decides lives here, with no sockets, no clock reads and no thread RNG:
//! the driver (tokio in `node-native`, the browser in `node-wasm`, or the [`sim`] simulator) feeds
//! [`Input`]s and [`Command`]s in with the current [`Instant`], and carries out the [`Output`]s.
//!
//! ```
//! use node_core::{Config, Identity, Instant, Node, Output};
//! use rand_core::SeedableRng;
//!
//! let keys = Identity::generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
//! let now = Instant::from_unix_ms(1_700_000_000_000);
//! let mut config = Config::default();
//! config.tcp_port = Some(4000);
//! let mut node = Node::new(config, keys, 42, now);
//! node.handle_timeout(now);
//! // Drain every output after each input, then arm a timer for `poll_timeout`.
//! while let Some(out) = node.poll_output() {
//!     if let Output::Transmit { dest, data } = out {
//!         assert!(!data.is_empty()); // the first LAN announcement
//!         let _ = dest;
//!     }
//! }
//! assert!(node.poll_timeout().is_some());
//! ```
//!
//! ## Module map
//! - [`identity`]: Ed25519 keys, [`PeerId`], signing domains.
//! - [`wire`]: the [`wire::Message`] set, postcard encoding, [`wire::frame`] length-prefixed framing.
//! - [`discovery`]: signed LAN announcements, replay guard, the announce schedule, port rotation.
//! - [`node`](Node): the state machine tying links, peers, messaging and transfers together.
//! - [`transfer`]: chunked, verified, resumable, multi-source file transfer.
//! - [`names`]: name records signed by their owners (shared with the bootstrap server).
//! - [`presence`]: signed announcements to a bootstrap server, and its signed peer and trust lists.
//! - [`envelope`]: signed, sealed signaling envelopes between two PeerIds (WebRTC set-up).
//! - [`signal`]: the bootstrap server's websocket protocols (login, signaling, relay).
//! - [`interface`]: the ids, inputs, outputs, events and commands a driver speaks.
//! - [`sim`] (feature `sim`): a deterministic discrete-event network for hundreds of nodes.
#![deny(missing_docs)]

mod bounded;
pub mod config;
pub mod discovery;
pub mod envelope;
pub mod identity;
pub mod interface;
#[cfg(feature = "json")]
pub mod json;
pub mod names;
pub mod nat;
mod node;
#[cfg(feature = "openapi")]
mod openapi;
pub mod overlay;
pub mod presence;
mod serde_forms;
pub mod signal;
pub mod time;
pub mod transfer;
pub mod wire;

#[cfg(feature = "sim")]
pub mod sim;

pub use config::Config;
pub use identity::{Keypair as Identity, PeerId};
pub use interface::*;
pub use node::{Diagnosis, MeshMap, Node, PeerSummary, Stats};
pub use time::Instant;
pub use wire::{MsgId, TransferId};

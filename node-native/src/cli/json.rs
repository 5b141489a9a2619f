//! The `--json` scripting interface (DESIGN.md "Interfaces"): events out, commands in, one JSON
//! object per line. Field names are a stable contract: add, never rename.

pub use node_core::json::{error, event, peers};
use serde::Deserialize;

/// A command read from stdin.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum JsonCommand {
    /// Broadcast chat.
    Chat {
        /// Text.
        text: String,
    },
    /// Direct message.
    Msg {
        /// Peer id, unique id prefix, or name.
        peer: String,
        /// Text.
        text: String,
    },
    /// Offer a file to one peer, or to every linked peer.
    Send {
        /// Path of the file.
        path: String,
        /// Peer id, unique id prefix, or name.
        peer: Option<String>,
    },
    /// Dial an address.
    Connect {
        /// host:port (or a peer id already linked).
        addr: String,
    },
    /// List peers (answered by a `peers` event).
    Peers,
    /// Connectivity to one peer (answered by a `doctor` event; starts a link attempt when
    /// there is neither a link nor a report).
    Doctor {
        /// Peer id, unique id prefix, or name.
        peer: String,
    },
    /// Announce on the LAN now.
    Discover,
    /// Drop counters (answered by a `stats` event).
    Stats,
    /// Claim a name (needs a bootstrap server).
    NameClaim {
        /// The name.
        name: String,
    },
    /// Look up a name (needs a bootstrap server).
    NameLookup {
        /// The name.
        name: String,
    },
    /// Stop the node.
    Quit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_unknown_fields_are_ignored() {
        let c: JsonCommand = serde_json::from_str(r#"{"cmd":"chat","text":"hi","extra":1}"#).unwrap();
        assert!(matches!(c, JsonCommand::Chat { text } if text == "hi"));
        let c: JsonCommand = serde_json::from_str(r#"{"cmd":"send","path":"/x"}"#).unwrap();
        assert!(matches!(c, JsonCommand::Send { peer: None, .. }));
        assert!(serde_json::from_str::<JsonCommand>(r#"{"cmd":"nope"}"#).is_err());
    }
}

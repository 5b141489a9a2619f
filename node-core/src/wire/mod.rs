//! What travels on links: the [`Message`] set, its postcard encoding, and stream [`frame`]s.
//!
//! A message is encoded as postcard's enum form — a varint kind followed by the body — so a decoder
//! can tell "a kind I do not know" (a newer peer: skip and count) from "a kind I know but cannot
//! parse" (a broken or hostile peer: close the link). Trailing bytes after a known body are
//! ignored, which lets a later version append fields.

pub mod fragment;
pub mod frame;
mod message;

pub use message::*;

/// The protocol version carried in [`Hello`]. Peers with a different major version are refused.
pub const PROTOCOL_VERSION: u16 = 3;

/// The outcome of decoding one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A message this version understands.
    Message(Message),
    /// A message kind from a newer version, skipped.
    UnknownKind(u32),
}

/// Why a frame could not be decoded as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is empty or its kind varint is malformed.
    #[error("frame has no valid message kind")]
    NoKind,
    /// The kind is known but its body does not parse.
    #[error("malformed body for message kind {kind}: {reason}")]
    Malformed {
        /// The message kind.
        kind: u32,
        /// postcard's description.
        reason: String,
    },
}

/// Encodes a message for a frame.
pub fn encode(msg: &Message) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail: every type in `Message` is serializable.
    postcard::to_allocvec(msg).unwrap_or_default()
}

/// Decodes one frame.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let kind = read_varint_u32(bytes).ok_or(DecodeError::NoKind)?;
    if kind >= Message::KIND_COUNT {
        return Ok(Decoded::UnknownKind(kind));
    }
    postcard::from_bytes::<Message>(bytes)
        .map(Decoded::Message)
        .map_err(|e| DecodeError::Malformed { kind, reason: e.to_string() })
}

/// Reads postcard's LEB128 varint encoding of a u32 from the start of `bytes`.
fn read_varint_u32(bytes: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().take(5).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests;

//! Serde forms that differ by format: compact bytes in postcard (the wire, and every signed
//! encoding), readable text in JSON (the bootstrap server's HTTP API). One struct then serves both,
//! and a signature over its postcard bytes can be checked from its JSON form.

/// `Vec<u8>` as serde bytes in binary formats, standard base64 in human-readable ones.
pub mod base64_bytes {
    use data_encoding::BASE64;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `v`.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&BASE64.encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = std::borrow::Cow::<str>::deserialize(d)?;
            BASE64.decode(text.as_bytes()).map_err(|_| serde::de::Error::custom("expected standard base64"))
        } else {
            serde_bytes::ByteBuf::deserialize(d).map(|b| b.into_vec())
        }
    }
}

//! Human names bound to keys: the record a name's owner signs, shared by the bootstrap server
//! (which stores and serves it) and nodes (which claim, update and verify it).
//!
//! A record is signed over its postcard encoding under the domain `weft/v1/name`, so the JSON a
//! server speaks can be formatted any way: the signed bytes are rebuilt from the fields.

use crate::identity::{signed_bytes, Keypair, PeerId, Signature};
use serde::{Deserialize, Serialize};

/// Longest value a name may hold, in bytes.
pub const MAX_VALUE_LEN: usize = 512;
/// Longest name, in characters.
pub const MAX_NAME_LEN: usize = 63;
/// Domain tag of name-record signatures.
pub const NAME_DOMAIN: &[u8] = b"weft/v1/name\0";
/// Domain tag of a server's signature over a name answer (record, owner signature, expiry).
pub const ANSWER_DOMAIN: &[u8] = b"weft/v1/name-answer\0";

/// A valid name: 1–63 of `[a-z0-9-]`, not starting or ending with a hyphen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Why a string is not a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty, or longer than 63 characters.
    #[error("a name is 1 to {MAX_NAME_LEN} characters")]
    Length,
    /// A character outside `[a-z0-9-]`.
    #[error("a name uses only a-z, 0-9 and '-'")]
    Alphabet,
    /// Starts or ends with '-'.
    #[error("a name cannot start or end with '-'")]
    Hyphen,
}

impl Name {
    /// Checks `s` against the name rules.
    pub fn parse(s: &str) -> Result<Name, NameError> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(NameError::Length);
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(NameError::Alphabet);
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(NameError::Hyphen);
        }
        Ok(Name(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Name, NameError> {
        Name::parse(&s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the owner of a name signs: a claim, an update, or a delete.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    /// The name.
    pub name: Name,
    /// What it maps to (typically a PeerId and addresses), at most [`MAX_VALUE_LEN`] bytes; base64
    /// in JSON.
    #[serde(with = "crate::serde_forms::base64_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub value: Vec<u8>,
    /// The key that owns the name (and signs this record).
    pub owner: PeerId,
    /// Strictly increasing per name: a record with a seq not above the stored one is a replay.
    pub seq: u64,
    /// When the owner signed it, by its clock.
    pub unix_ms: u64,
    /// True to delete the name.
    pub delete: bool,
}

/// A record with its owner's signature.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedNameRecord {
    /// The record.
    pub record: NameRecord,
    /// The owner's signature over the record's postcard encoding.
    pub signature: Signature,
}

/// Why a signed record is not acceptable on its own (before any registry rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("value of {0} bytes exceeds {MAX_VALUE_LEN}")]
    ValueTooLong(usize),
    /// The signature does not verify against the owner key.
    #[error("the record is not signed by its owner")]
    BadSignature,
}

impl NameRecord {
    fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(NAME_DOMAIN, &postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Signs the record with the owner's key (which must be `owner`).
    pub fn sign(self, owner: &Keypair) -> SignedNameRecord {
        let signature = owner.sign(&self.signed_bytes());
        SignedNameRecord { record: self, signature }
    }
}

impl SignedNameRecord {
    /// Checks the value limit and the owner's signature.
    pub fn verify(&self) -> Result<(), RecordError> {
        if self.record.value.len() > MAX_VALUE_LEN {
            return Err(RecordError::ValueTooLong(self.record.value.len()));
        }
        if !self.record.owner.verify(&self.record.signed_bytes(), &self.signature) {
            return Err(RecordError::BadSignature);
        }
        Ok(())
    }
}

/// The bytes a server signs when it answers for a name: the owner-signed record and its expiry,
/// so a node can check both who owns the name and until when the server vouches for it.
pub fn answer_bytes(signed: &SignedNameRecord, expires_unix_ms: u64) -> Vec<u8> {
    signed_bytes(ANSWER_DOMAIN, &postcard::to_allocvec(&(signed, expires_unix_ms)).unwrap_or_default())
}

/// A server's answer for a name: the owner-signed record, how long the server keeps it, and the
/// server's signature over both ([`answer_bytes`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameAnswer {
    /// The record as its owner signed it.
    pub record: SignedNameRecord,
    /// When the name expires unless bumped (unix ms, server clock).
    pub expires_unix_ms: u64,
    /// The key that signed this answer.
    pub server_key: PeerId,
    /// The server's signature over [`answer_bytes`].
    pub server_signature: Signature,
}

/// Why a name answer is not to be believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// Signed by a server other than the pinned one.
    #[error("the answer comes from server {got}, not the pinned {pinned}")]
    WrongServer {
        /// The pinned key.
        pinned: PeerId,
        /// The key in the answer.
        got: PeerId,
    },
    /// The server's signature does not verify.
    #[error("the server's signature does not verify")]
    BadServerSignature,
    /// The record itself is invalid.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl NameAnswer {
    /// The answer for `record`, signed by `server`.
    pub fn new(record: SignedNameRecord, expires_unix_ms: u64, server: &Keypair) -> Self {
        let server_signature = server.sign(&answer_bytes(&record, expires_unix_ms));
        NameAnswer { record, expires_unix_ms, server_key: server.peer_id(), server_signature }
    }

    /// Checks that `pinned` signed the answer and the owner signed the record.
    pub fn verify(&self, pinned: &PeerId) -> Result<(), AnswerError> {
        if self.server_key != *pinned {
            return Err(AnswerError::WrongServer { pinned: *pinned, got: self.server_key });
        }
        if !pinned.verify(&answer_bytes(&self.record, self.expires_unix_ms), &self.server_signature) {
            return Err(AnswerError::BadServerSignature);
        }
        Ok(self.record.verify()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(Name::parse("alice").is_ok());
        assert!(Name::parse("a-1").is_ok());
        assert!(Name::parse(&"a".repeat(63)).is_ok());
        assert_eq!(Name::parse(""), Err(NameError::Length));
        assert_eq!(Name::parse(&"a".repeat(64)), Err(NameError::Length));
        assert_eq!(Name::parse("Alice"), Err(NameError::Alphabet));
        assert_eq!(Name::parse("a.b"), Err(NameError::Alphabet));
        assert_eq!(Name::parse("-a"), Err(NameError::Hyphen));
        assert_eq!(Name::parse("a-"), Err(NameError::Hyphen));
        assert!(serde_json_like_roundtrip("bob"));
    }

    fn serde_json_like_roundtrip(s: &str) -> bool {
        let n = Name::parse(s).unwrap();
        let bytes = postcard::to_allocvec(&n).unwrap();
        postcard::from_bytes::<Name>(&bytes).unwrap() == n
    }

    #[test]
    fn invalid_names_do_not_deserialize() {
        let bytes = postcard::to_allocvec(&String::from("Not Valid")).unwrap();
        assert!(postcard::from_bytes::<Name>(&bytes).is_err());
    }

    #[test]
    fn records_verify_only_with_their_owner_and_content() {
        let owner = Keypair::from_secret([1; 32]);
        let other = Keypair::from_secret([2; 32]);
        let rec = NameRecord {
            name: Name::parse("alice").unwrap(),
            value: b"peer".to_vec(),
            owner: owner.peer_id(),
            seq: 1,
            unix_ms: 5,
            delete: false,
        };
        let signed = rec.clone().sign(&owner);
        assert_eq!(signed.verify(), Ok(()));
        let mut tampered = signed.clone();
        tampered.record.seq = 2;
        assert_eq!(tampered.verify(), Err(RecordError::BadSignature));
        let forged = rec.clone().sign(&other);
        assert_eq!(forged.verify(), Err(RecordError::BadSignature));
        let big = NameRecord { value: vec![0; MAX_VALUE_LEN + 1], ..rec }.sign(&owner);
        assert_eq!(big.verify(), Err(RecordError::ValueTooLong(MAX_VALUE_LEN + 1)));
    }

    #[test]
    fn answers_survive_json_and_verify_only_against_the_pinned_server() {
        let owner = Keypair::from_secret([1; 32]);
        let server = Keypair::from_secret([3; 32]);
        let rec = NameRecord {
            name: Name::parse("alice").unwrap(),
            value: vec![0, 255, 7],
            owner: owner.peer_id(),
            seq: 1,
            unix_ms: 5,
            delete: false,
        };
        let answer = NameAnswer::new(rec.sign(&owner), 99, &server);
        let json = serde_json::to_string(&answer).unwrap();
        assert!(json.contains(&owner.peer_id().to_string()), "ids are text in JSON: {json}");
        assert!(json.contains("\"value\":\"AP8H\""), "values are base64 in JSON: {json}");
        let back: NameAnswer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, answer);
        assert_eq!(back.verify(&server.peer_id()), Ok(()));
        assert!(matches!(back.verify(&owner.peer_id()), Err(AnswerError::WrongServer { .. })));
        let stretched = NameAnswer { expires_unix_ms: 100, ..back };
        assert_eq!(stretched.verify(&server.peer_id()), Err(AnswerError::BadServerSignature));
    }
}

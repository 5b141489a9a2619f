//! Name records: a bootstrap server's [`NameAnswer`] carried in the DHT as a [`SignedRecord`].
//!
//! A node cannot sign for the server, and the server is not a DHT member, so the record *is* the
//! answer, repackaged: the server's signature over the answer ([`answer_bytes`]: the owner-signed
//! record and the expiry) stands as the record's signature. What it does not cover directly is
//! tied to what it does: the kind's name must be the record's name, `seq` the owner's `seq`, and
//! the value the one encoding of the owner-signed record. So any node that got an answer
//! from the server can mirror it, and nobody can alter one or make one up.

use super::{RecordError, RecordKind, SignedRecord};
use crate::names::{answer_bytes, NameAnswer, SignedNameRecord};

impl SignedRecord {
    /// The DHT record of a server's `answer`, to store while the server can be reached and find
    /// when it cannot. Refused unless the answer checks out against its own server key (whether
    /// that server is one to trust is for whoever reads it).
    pub fn mirror(answer: &NameAnswer) -> Result<Self, RecordError> {
        // Encoding a record into a Vec cannot fail; were it to, `check` refuses the empty value.
        let value = postcard::to_allocvec(&answer.record).unwrap_or_default();
        let record = SignedRecord {
            kind: RecordKind::Name(answer.record.record.name.to_string()),
            publisher: answer.server_key,
            value,
            seq: answer.record.record.seq,
            expires_ms: answer.expires_unix_ms,
            signature: answer.server_signature,
        };
        record.check()?;
        Ok(record)
    }

    /// The server's answer a name record carries; `None` for another kind or a value that does
    /// not decode. Call it on a record that passed [`check`](Self::check); the caller still
    /// checks the answer against the server it trusts ([`NameAnswer::verify`]).
    pub fn name_answer(&self) -> Option<NameAnswer> {
        let RecordKind::Name(_) = self.kind else { return None };
        let record: SignedNameRecord = postcard::from_bytes(&self.value).ok()?;
        Some(NameAnswer {
            record,
            expires_unix_ms: self.expires_ms,
            server_key: self.publisher,
            server_signature: self.signature,
        })
    }
}

/// [`SignedRecord::check`] for a name record (bounds already checked): the value is the
/// owner-signed record of `name` in its one encoding, `seq` is the owner's, the owner signed the
/// record and the publisher signed the answer.
pub(super) fn check(record: &SignedRecord, name: &str) -> Result<(), RecordError> {
    let signed: SignedNameRecord = postcard::from_bytes(&record.value).map_err(|_| RecordError::NotAnAnswer)?;
    // Another encoding of the same fields would verify too; one value per answer keeps records
    // comparable byte for byte.
    let canonical = postcard::to_allocvec(&signed).map_err(|_| RecordError::NotAnAnswer)?;
    if canonical != record.value || signed.record.name.as_str() != name || record.seq != signed.record.seq {
        return Err(RecordError::NotAnAnswer);
    }
    signed.verify()?;
    if !record.publisher.verify(&answer_bytes(&signed, record.expires_ms), &record.signature) {
        return Err(RecordError::BadSignature);
    }
    Ok(())
}

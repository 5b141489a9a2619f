//! OpenAPI schemas (feature `openapi`) for the types whose JSON form is hand-written text: ids,
//! signatures and names. The structs around them derive theirs.

use crate::identity::{PeerId, Signature};
use crate::names::Name;
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

fn text(pattern: &str, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).description(Some(description)).into()
}

impl utoipa::PartialSchema for PeerId {
    fn schema() -> RefOr<Schema> {
        text("^[a-z2-7]{52}$", "An Ed25519 public key: lowercase base32 without padding")
    }
}

impl utoipa::ToSchema for PeerId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PeerId")
    }
}

impl utoipa::PartialSchema for Signature {
    fn schema() -> RefOr<Schema> {
        text("^[0-9a-fA-F]{128}$", "An Ed25519 signature: 64 bytes in hex")
    }
}

impl utoipa::ToSchema for Signature {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Signature")
    }
}

impl utoipa::PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        text("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "A name: 1-63 of a-z, 0-9 and '-', no hyphen at either end")
    }
}

impl utoipa::ToSchema for Name {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Name")
    }
}

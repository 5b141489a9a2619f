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

/// `PartialSchema` + `ToSchema` for a type whose JSON form is a string matching `pattern`.
macro_rules! text_schema {
    ($ty:ty, $name:literal, $pattern:literal, $description:literal) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                text($pattern, $description)
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

text_schema!(PeerId, "PeerId", "^[a-z2-7]{52}$", "An Ed25519 public key: lowercase base32 without padding");
text_schema!(Signature, "Signature", "^[0-9a-fA-F]{128}$", "An Ed25519 signature: 64 bytes in hex");
text_schema!(
    Name,
    "Name",
    "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "A name: 1-63 of a-z, 0-9 and '-', no hyphen at either end"
);

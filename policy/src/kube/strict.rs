//! Reading `k8s-openapi` types as strictly as the API server does.
//!
//! `k8s-openapi`'s own `Deserialize` impls skip unknown members and default missing required
//! ones, but a member the API server would reject (`topologykey` for `topologyKey`) must stay
//! an `invalid-affinity` finding with its path. So apart reads those types through the
//! helpers here: one pass over the members straight into the `k8s-openapi` value, failing
//! at an unknown, duplicate or missing member with the very message (and so at the very
//! position, which gives the JSON path) that serde's derive with `deny_unknown_fields` gives.

use std::fmt;

use serde::de::{DeserializeSeed, Error, MapAccess, Visitor};

/// A struct's member names, in declaration order; a member is known by its index.
#[derive(Clone, Copy)]
pub(crate) struct Fields(pub(crate) &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Fields {
    type Value = usize;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        // An identifier, as derive reads one: no allocation for the key.
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Fields {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<usize, E> {
        self.0
            .iter()
            .position(|f| *f == v)
            .ok_or_else(|| E::unknown_field(v, self.0))
    }
}

/// Reads a map's members as fields of a struct: `member(map, i)` reads field `i`'s value.
/// A member read twice is an error (derive's "duplicate field"), and so is a field of
/// `required` (indices into the fields) left unread once the map ends ("missing field").
pub(crate) fn read_members<'de, A: MapAccess<'de>>(
    mut map: A,
    fields: Fields,
    required: &[usize],
    mut member: impl FnMut(&mut A, usize) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    // Bit i: field i was read (the API's structs have far fewer than 64 members).
    let mut seen = 0u64;
    while let Some(i) = map.next_key_seed(fields)? {
        let bit = 1u64 << i;
        if seen & bit != 0 {
            return Err(A::Error::duplicate_field(fields.0[i]));
        }
        seen |= bit;
        member(&mut map, i)?;
    }
    match required.iter().find(|&&i| seen & (1u64 << i) == 0) {
        Some(&i) => Err(A::Error::missing_field(fields.0[i])),
        None => Ok(()),
    }
}

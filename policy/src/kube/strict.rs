//! Reading `k8s-openapi` types as strictly as the API server does.
//!
//! `k8s-openapi`'s own `Deserialize` impls skip unknown members and default missing required
//! ones, but a member the API server would reject (`topologykey` for `topologyKey`) must stay
//! an `invalid-affinity` finding with its path. So apart reads those types through
//! [`Members`]: one pass over the members straight into the `k8s-openapi` value, failing at
//! an unknown, duplicate or missing member with the very message (and so at the very
//! position, which gives the JSON path) that serde's derive with `deny_unknown_fields` gives.
//! A reader may also be lenient ([`Members::LENIENT`]): unknown members are then skipped, as
//! a lean reader of a cluster snapshot does, and members apart never needs are not parsed.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Error, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// How one `k8s-openapi` type (or one lean view of it) is read, member by member.
pub(crate) trait Members {
    /// The value read.
    type Value: Default;
    /// The struct's name in "expected struct ..." messages.
    const NAME: &'static str;
    /// The member names, in the order derive's "expected one of" messages list them; a member
    /// is known by its index.
    const FIELDS: &'static [&'static str];
    /// Members that must be present (indices into [`Self::FIELDS`]).
    const REQUIRED: &'static [usize] = &[];
    /// Skip unknown members instead of refusing them.
    const LENIENT: bool = false;

    /// Reads member `field`'s value from `map` into `value`.
    fn member<'de, A: MapAccess<'de>>(
        value: &mut Self::Value,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error>;
}

/// A value read through the reader `R`.
pub(crate) struct Strict<R: Members>(pub(crate) R::Value);

impl<'de, R: Members> Deserialize<'de> for Strict<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(R::NAME, R::FIELDS, Struct::<R>(PhantomData))
            .map(Strict)
    }
}

struct Struct<R>(PhantomData<R>);

impl<'de, R: Members> Visitor<'de> for Struct<R> {
    type Value = R::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", R::NAME)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<R::Value, A::Error> {
        let mut value = R::Value::default();
        // Bit i: field i was read (the API's structs have far fewer than 64 members).
        let mut seen = 0u64;
        let key = Key::<R>(PhantomData);
        while let Some(i) = map.next_key_seed(key)? {
            let Some(i) = i else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let bit = 1u64 << i;
            if seen & bit != 0 {
                return Err(A::Error::duplicate_field(field(R::FIELDS, i)));
            }
            seen |= bit;
            R::member(&mut value, &mut map, i)?;
        }
        match R::REQUIRED.iter().find(|&&i| seen & (1u64 << i) == 0) {
            Some(&i) => Err(A::Error::missing_field(field(R::FIELDS, i))),
            None => Ok(value),
        }
    }
}

fn field(fields: &'static [&'static str], i: usize) -> &'static str {
    fields.get(i).copied().unwrap_or_default()
}

/// A member name, read as derive reads an identifier (no allocation): its index, or `None`
/// for an unknown member of a lenient reader.
struct Key<R>(PhantomData<R>);

impl<R> Clone for Key<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Key<R> {}

impl<'de, R: Members> DeserializeSeed<'de> for Key<R> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<R: Members> Visitor<'_> for Key<R> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Option<usize>, E> {
        match R::FIELDS.iter().position(|f| *f == v) {
            Some(i) => Ok(Some(i)),
            None if R::LENIENT => Ok(None),
            None => Err(E::unknown_field(v, R::FIELDS)),
        }
    }
}

/// Reads an optional member through `R` (null is `None`).
pub(crate) fn optional<'de, R: Members, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<R::Value>, A::Error> {
    Ok(map.next_value::<Option<Strict<R>>>()?.map(|s| s.0))
}

/// Reads an optional list member whose items are read through `R` (null is `None`).
pub(crate) fn list<'de, R: Members, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<Vec<R::Value>>, A::Error> {
    Ok(map
        .next_value::<Option<Vec<Strict<R>>>>()?
        .map(|v| v.into_iter().map(|s| s.0).collect()))
}

/// Reads an `int32` member as derive read apart's `i64`, so that an out-of-range number
/// gets the range check's own message rather than a type error.
pub(crate) fn int32<'de, A: MapAccess<'de>>(
    map: &mut A,
    describe: impl FnOnce(i64) -> String,
) -> Result<i32, A::Error> {
    let n: i64 = map.next_value()?;
    i32::try_from(n).map_err(|_| A::Error::custom(describe(n)))
}

/// [`int32`] for an optional member (null is `None`).
pub(crate) fn optional_int32<'de, A: MapAccess<'de>>(
    map: &mut A,
    describe: impl FnOnce(i64) -> String,
) -> Result<Option<i32>, A::Error> {
    match map.next_value::<Option<i64>>()? {
        None => Ok(None),
        Some(n) => i32::try_from(n)
            .map(Some)
            .map_err(|_| A::Error::custom(describe(n))),
    }
}

/// A reader of a selector requirement: `LabelSelectorRequirement` and
/// `NodeSelectorRequirement` have the same members, `key` and `operator` required and
/// `values` optional. `$name` is the struct name messages give.
macro_rules! requirement_members {
    ($reader:ident, $value:ty, $name:literal) => {
        struct $reader;

        impl $crate::kube::strict::Members for $reader {
            type Value = $value;
            const NAME: &'static str = $name;
            const FIELDS: &'static [&'static str] = &["key", "operator", "values"];
            const REQUIRED: &'static [usize] = &[0, 1];

            fn member<'de, A: serde::de::MapAccess<'de>>(
                r: &mut $value,
                map: &mut A,
                field: usize,
            ) -> Result<(), A::Error> {
                match field {
                    0 => r.key = map.next_value()?,
                    1 => r.operator = map.next_value()?,
                    _ => r.values = map.next_value()?,
                }
                Ok(())
            }
        }
    };
}

pub(crate) use requirement_members;

/// `#[serde(deserialize_with)]` for an optional member read through `R` (null or absent is
/// `None`).
pub(crate) fn optional_member<'de, R: Members, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<R::Value>, D::Error> {
    Ok(Option::<Strict<R>>::deserialize(d)?.map(|s| s.0))
}

/// `#[serde(deserialize_with)]` for an optional list member whose items are read through `R`.
pub(crate) fn list_member<'de, R: Members, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<R::Value>>, D::Error> {
    Ok(Option::<Vec<Strict<R>>>::deserialize(d)?.map(|v| v.into_iter().map(|s| s.0).collect()))
}

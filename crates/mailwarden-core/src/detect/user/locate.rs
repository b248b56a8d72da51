//! Where a node of a YAML file is: line and column of the value (or key) at
//! a path such as `rules[2].detection.selection["client_ip|cidr"][1]`.
//!
//! serde_yaml_ng keeps no positions in its `Value`, but it puts the position
//! of the node being read into every error raised while reading it. So to
//! find a node, the file is read once more with a seed that walks down the
//! path, skipping everything else, and fails on purpose at the node: the
//! error's location is the node's. Only erroneous nodes are located, so a
//! valid file is read once.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// The value under a mapping key.
    Key(String),
    /// A mapping key itself (for unknown keys).
    KeyName(String),
    /// An element of a sequence.
    Index(usize),
}

/// A position: 1-based line and column, and the byte index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) index: usize,
}

/// The position of the node at `path` in `text`, or of its nearest ancestor
/// that can be found; line 1 column 1 when none can.
pub(crate) fn locate(text: &str, path: &[Seg]) -> Pos {
    for n in (0..=path.len()).rev() {
        if let Some(p) = locate_exact(text, &path[..n]) {
            return p;
        }
    }
    Pos {
        line: 1,
        column: 1,
        index: 0,
    }
}

fn locate_exact(text: &str, path: &[Seg]) -> Option<Pos> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match (Walk { path }).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| Pos {
            line: l.line(),
            column: l.column(),
            index: l.index(),
        }),
    }
}

/// The message of the error raised on purpose.
const HERE: &str = "mailwarden: here";

/// Walks down `path`; fails at its end.
struct Walk<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.path.split_first() {
            None => d.deserialize_any(Here),
            Some((Seg::Index(i), rest)) => d.deserialize_seq(SeqTo { index: *i, rest }),
            Some((Seg::Key(k), rest)) => d.deserialize_map(MapTo {
                key: k,
                rest,
                key_itself: false,
            }),
            Some((Seg::KeyName(k), _)) => d.deserialize_map(MapTo {
                key: k,
                rest: &[],
                key_itself: true,
            }),
        }
    }
}

/// Fails on whatever node it is given (the error carries its position).
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HERE)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
}

struct SeqTo<'p> {
    index: usize,
    rest: &'p [Seg],
}

impl<'de> Visitor<'de> for SeqTo<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            if i == self.index {
                seq.next_element_seed(Walk { path: self.rest })?;
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
}

struct MapTo<'p> {
    key: &'p str,
    rest: &'p [Seg],
    key_itself: bool,
}

impl<'de> Visitor<'de> for MapTo<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(found) = map.next_key_seed(KeyIs {
            key: self.key,
            fail: self.key_itself,
        })? {
            if found {
                map.next_value_seed(Walk { path: self.rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Reads a key: whether it is `key` (and fails there when `fail`).
struct KeyIs<'k> {
    key: &'k str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl KeyIs<'_> {
    fn check<E: de::Error>(&self, s: &str) -> Result<bool, E> {
        if s == self.key {
            if self.fail {
                return Err(E::custom(HERE));
            }
            return Ok(true);
        }
        Ok(false)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(if v { "true" } else { "false" })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

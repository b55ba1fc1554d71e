//! Deserialize a named section written either as `[[providers]]` (an array of tables with a
//! `name` key) or as `[providers.<name>]` (a table of tables keyed by name): the public docs use
//! the first form, the reference server the second (API.md §2, T29).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use super::Named;

pub(crate) fn seq_or_map<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Named,
{
    struct SeqOrMap<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Named> Visitor<'de> for SeqOrMap<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of tables or a table of named tables")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let mut item: T = map.next_value()?;
                let name = item.name_mut();
                if name.is_empty() {
                    *name = key;
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_any(SeqOrMap(PhantomData))
}

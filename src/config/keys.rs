//! Every unknown key of a file, each where it was written.
//!
//! serde's `deny_unknown_fields` stops deserialization at the first unknown key, so a file with
//! three typos would take three runs of `triaged check`. Before deserializing, the parsed
//! document (which keeps every key's position) is walked against the schema's tables: each
//! table's keys are taken from its struct's serde derive (so they cannot drift from
//! `raw.rs`), and [`Shape::with`] names the keys that hold tables of their own.
//! `deny_unknown_fields` stays on every struct, as the last word.

use std::borrow::Cow;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::Diagnostic;

/// The keys a table may hold, and the shapes of those that hold tables (or arrays of them).
#[derive(Debug)]
pub struct Shape {
    fields: &'static [&'static str],
    nested: Vec<(&'static str, Shape)>,
}

impl Shape {
    /// The table `T` deserializes from: its fields as serde's derive lists them.
    pub fn of<'de, T: Deserialize<'de>>() -> Shape {
        let mut fields: &'static [&'static str] = &[];
        // Always an error: FieldsOf only records what the derive asks for and stops.
        let _ = T::deserialize(FieldsOf(&mut fields));
        Shape {
            fields,
            nested: Vec::new(),
        }
    }

    /// `key` holds a table (or an array of tables) of `shape`. Keys not named here hold values,
    /// or tables with keys of the operator's choosing (`[sla.hours]`), and are not walked.
    pub fn with(mut self, key: &'static str, shape: Shape) -> Shape {
        debug_assert!(self.fields.contains(&key), "{key} is not a field");
        self.nested.push((key, shape));
        self
    }

    /// The keys of `table` (and of the tables it holds) that this shape does not know, each
    /// as serde would say it: ``unknown field `paht`, expected `path` or `busy_timeout` ``.
    pub fn unknown_keys(&self, path: &Path, source: &str, table: &DeTable<'_>) -> Vec<Diagnostic> {
        let mut found = Vec::new();
        self.walk(table, &mut found);
        found
            .into_iter()
            .map(|(key, known)| {
                let message = <serde::de::value::Error as serde::de::Error>::unknown_field(
                    key.get_ref(),
                    known,
                )
                .to_string();
                Diagnostic::at(path, source, key.span(), message)
            })
            .collect()
    }

    /// Pushes each unknown key of `table`, with the keys it could have been.
    fn walk<'t>(
        &self,
        table: &'t DeTable<'_>,
        found: &mut Vec<(&'t Spanned<Cow<'t, str>>, &'static [&'static str])>,
    ) {
        for (key, value) in table.iter() {
            if !self.fields.contains(&key.get_ref().as_ref()) {
                found.push((key, self.fields));
                continue;
            }
            let Some((_, inner)) = self.nested.iter().find(|(k, _)| *k == key.get_ref()) else {
                continue;
            };
            // A value of another type is left to serde, which says what was expected.
            match value.get_ref() {
                DeValue::Table(t) => inner.walk(t, found),
                DeValue::Array(items) => {
                    for item in items.iter() {
                        if let DeValue::Table(t) = item.get_ref() {
                            inner.walk(t, found);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A deserializer that only records the field names a derived struct asks for.
struct FieldsOf<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldsOf<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

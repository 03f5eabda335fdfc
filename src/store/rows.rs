//! The core's enums in rows: written by name (`urgent`, `closed`, `verify`) and read back
//! typed. A name this version does not know is an error that says what it found, never a
//! guess; the `CHECK` constraints of migration 10 keep such names out of the tables.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use super::OutboxKind;
use crate::corrections::{Field, Source};
use crate::score::Priority;
use crate::tickets::{Followup, State};

/// A name in a row that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?} in the store")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// The value of `v` that `find` knows by name.
fn named<T>(
    v: ValueRef<'_>,
    what: &'static str,
    find: impl Fn(&str) -> Option<T>,
) -> FromSqlResult<T> {
    let name = v.as_str()?;
    find(name).ok_or_else(|| {
        FromSqlError::Other(Box::new(UnknownName {
            what,
            name: name.to_string(),
        }))
    })
}

impl ToSql for Priority {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for Priority {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        named(v, "priority", |s| {
            Priority::ALL.into_iter().find(|p| p.as_str() == s)
        })
    }
}

impl ToSql for State {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for State {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        named(v, "ticket state", State::parse)
    }
}

impl ToSql for Followup {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for Followup {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        named(v, "follow-up kind", Followup::parse)
    }
}

impl ToSql for OutboxKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for OutboxKind {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        named(v, "outbox kind", OutboxKind::parse)
    }
}

impl ToSql for Field {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for Field {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        named(v, "correction field", Field::parse)
    }
}

impl ToSql for Source {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for Source {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        named(v, "correction source", Source::parse)
    }
}

/// The priority of an outbox row's `priority_rank` (follow-ups rank after every
/// acknowledgement: [`super::followups::FOLLOWUP_RANK`] + the priority's rank).
pub(super) fn priority_of_rank(rank: i64) -> FromSqlResult<Priority> {
    crate::tickets::priority_at(rank % super::followups::FOLLOWUP_RANK).ok_or_else(|| {
        FromSqlError::Other(Box::new(UnknownName {
            what: "priority rank",
            name: rank.to_string(),
        }))
    })
}

/// `None` as `""`, as the ticket history's JSON has always said "no state before".
pub(super) fn state_or_empty<S: serde::Serializer>(
    state: &Option<State>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.map_or("", State::as_str))
}

/// The items of a comma-separated column (tones, intents, `[[ask]]` ids), empty ones left out.
pub fn list_column(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: FromSql>(name: &str) -> FromSqlResult<T> {
        T::column_result(ValueRef::Text(name.as_bytes()))
    }

    #[test]
    fn every_name_reads_back_as_written() {
        for p in Priority::ALL {
            assert_eq!(read::<Priority>(p.as_str()), Ok(p));
        }
        for s in State::ALL {
            assert_eq!(read::<State>(s.as_str()), Ok(s));
        }
        for f in Followup::ALL {
            assert_eq!(read::<Followup>(f.as_str()), Ok(f));
        }
        for k in OutboxKind::ALL {
            assert_eq!(read::<OutboxKind>(k.as_str()), Ok(k));
        }
        for f in Field::ALL {
            assert_eq!(read::<Field>(f.as_str()), Ok(f));
        }
        for s in Source::ALL {
            assert_eq!(read::<Source>(s.as_str()), Ok(s));
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it() {
        for (got, want) in [
            (
                read::<Priority>("medium").map(|_| ()),
                "unknown priority \"medium\" in the store",
            ),
            (
                read::<State>("pending").map(|_| ()),
                "unknown ticket state \"pending\" in the store",
            ),
            (
                read::<OutboxKind>("digest").map(|_| ()),
                "unknown outbox kind \"digest\" in the store",
            ),
            (
                read::<Priority>("").map(|_| ()),
                "unknown priority \"\" in the store",
            ),
        ] {
            match got {
                Err(FromSqlError::Other(e)) => assert_eq!(e.to_string(), want),
                other => panic!("{want}: {other:?}"),
            }
        }
        assert!(matches!(
            Priority::column_result(ValueRef::Integer(2)),
            Err(FromSqlError::InvalidType)
        ));
    }

    #[test]
    fn outbox_ranks_read_as_priorities() {
        for p in Priority::ALL {
            let rank = crate::tickets::rank(p);
            assert_eq!(priority_of_rank(rank).ok(), Some(p));
            assert_eq!(
                priority_of_rank(super::super::followups::FOLLOWUP_RANK + rank).ok(),
                Some(p)
            );
        }
        assert!(priority_of_rank(7).is_err());
    }
}

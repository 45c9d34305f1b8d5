//! One way to read a result row on either backend, so that each capability maps its rows to
//! records once (in its module) instead of once per backend.

use tokio_postgres::types::Type;

use crate::StorageError;

/// The columns of one result row, by position.
pub(crate) trait Columns {
    /// An integer column of any width.
    fn int(&self, i: usize) -> Result<i64, StorageError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StorageError>;
    fn text(&self, i: usize) -> Result<String, StorageError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StorageError>;
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64, StorageError> {
        Ok(self.get(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StorageError> {
        Ok(self.get(i)?)
    }

    fn text(&self, i: usize) -> Result<String, StorageError> {
        Ok(self.get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StorageError> {
        Ok(self.get(i)?)
    }
}

/// PostgreSQL's integers have widths (the schema keeps small counts in `int`); SQLite's are
/// all 64-bit. Reading by the column's own type makes both look alike.
fn pg_int(r: &tokio_postgres::Row, i: usize) -> Result<Option<i64>, StorageError> {
    let narrow = r.columns().get(i).map(|c| c.type_());
    Ok(match narrow {
        Some(&Type::INT4) => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
        Some(&Type::INT2) => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
        _ => r.try_get(i)?,
    })
}

impl Columns for tokio_postgres::Row {
    fn int(&self, i: usize) -> Result<i64, StorageError> {
        pg_int(self, i)?.ok_or_else(|| StorageError::Corrupt(format!("column {i} is null")))
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StorageError> {
        pg_int(self, i)
    }

    fn text(&self, i: usize) -> Result<String, StorageError> {
        Ok(self.try_get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StorageError> {
        Ok(self.try_get(i)?)
    }
}

/// The records of SQLite rows mapped by [`Columns`] (rusqlite's `query_map` closure answers its
/// own error, so each row comes back as a result in a result).
pub(crate) fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<Result<T, StorageError>>>,
) -> Result<Vec<T>, StorageError> {
    rows.map(|row| row?).collect()
}

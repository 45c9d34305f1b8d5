//! One way to read a stored row for both drivers, so each record's mapping from its columns is
//! written once, beside its capability's trait, against [`Columns`] rather than twice against
//! `rusqlite::Row` and `tokio_postgres::Row`.
//!
//! Typed accessors rather than one generic `get::<T>`: the two drivers' `FromSql` traits differ,
//! and a generic method would need a bound on both at every use. The records these mappings
//! build hold only integers, booleans, text and reals (and their nulls).

use tokio_postgres::types::Type;

use crate::StorageError;

/// The columns of one result row, by position.
pub(crate) trait Columns {
    /// An integer column of any width.
    fn int(&self, i: usize) -> Result<i64, StorageError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StorageError>;
    fn text(&self, i: usize) -> Result<String, StorageError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StorageError>;
    fn opt_real(&self, i: usize) -> Result<Option<f64>, StorageError>;
    fn flag(&self, i: usize) -> Result<bool, StorageError>;
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, StorageError>;
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
    fn opt_real(&self, i: usize) -> Result<Option<f64>, StorageError> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool, StorageError> {
        Ok(self.get(i)?)
    }
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, StorageError> {
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
    fn opt_real(&self, i: usize) -> Result<Option<f64>, StorageError> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool, StorageError> {
        Ok(self.try_get(i)?)
    }
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, StorageError> {
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

/// Whether the statement's `$n` parameters first appear in ascending order, as a text shared by
/// both backends needs: SQLite numbers `$n` by first appearance, not by `n`.
#[cfg(test)]
pub(crate) fn ascending_parameters(sql: &str) -> bool {
    let mut seen = 0;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u32>() else {
            continue;
        };
        if n > seen + 1 {
            return false;
        }
        seen = seen.max(n);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::ascending_parameters;

    #[test]
    fn sqlite_binds_dollar_parameters_by_first_appearance() {
        let conn = rusqlite::Connection::open_in_memory().expect("a database");
        let (a, b): (i64, i64) = conn
            .query_row("SELECT $2, $1", rusqlite::params![10, 20], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("a row");
        // `$2` took the first value: a shared text must name its parameters in order.
        assert_eq!((a, b), (10, 20));
        assert!(!ascending_parameters("SELECT $2, $1"));
        assert!(ascending_parameters("SELECT $1, $2, $1, $3"));
    }

    #[test]
    fn every_shared_statement_names_its_parameters_in_order() {
        use crate::inventory::*;
        use crate::order::*;
        for sql in [
            ORDER_BY_ID,
            LINES_OF_ORDER,
            HISTORY_OF_ORDER,
            INSERT_HISTORY,
            SET_ORDER_STATUS,
            ORDER_IDS_PAGE,
            ORDER_IDS_PAGE_NEWEST,
            MOVEMENTS_OF_PRODUCT,
            MOVEMENTS_PAGE,
            RESERVATIONS_OF_PRODUCT,
            ALERTS_PAGE,
            ENSURE_LEVEL,
            CHANGE_LEVEL,
            SET_REORDER,
            INSERT_MOVEMENT,
            RAISE_ALERT,
            CLEAR_ALERT,
            END_RESERVATION,
            crate::catalog::CATEGORY_AND_ANCESTORS,
        ] {
            assert!(ascending_parameters(sql), "{sql}");
        }
    }
}

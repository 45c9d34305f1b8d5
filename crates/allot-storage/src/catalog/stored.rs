//! How the catalog is read back: the column lists both backends select and the mapping from
//! their rows to records.

use allot_domain::UnixMillis;
use allot_domain::catalog::{
    AttributeKey, AttributeValue, Attributes, CategoryId, ProductSort, SearchText, SortKey,
    WarehouseId,
};

use super::{
    Category, Facets, Product, ProductQuery, Warehouse, attribute, category_id, corrupt, money,
    product_id,
};
use crate::StorageError;
use crate::row::Columns;

/// A product's columns, of `products p`; its attributes are read apart.
pub(crate) const PRODUCT_COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.price_minor, p.currency, \
                               p.category_id, p.active, p.created_at_ms, p.updated_at_ms";

pub(crate) const CATEGORY_COLUMNS: &str = "id, name, parent_id, created_at_ms, updated_at_ms";

pub(crate) const WAREHOUSE_COLUMNS: &str = "id, code, name, active, created_at_ms, updated_at_ms";

/// A product from its row ([`PRODUCT_COLUMNS`]) and its attributes.
pub(crate) fn product_from(
    r: &impl Columns,
    attributes: Attributes,
) -> Result<Product, StorageError> {
    Ok(Product {
        id: product_id(r.int(0)?)?,
        sku: r.text(1)?,
        name: r.text(2)?,
        description: r.text(3)?,
        price: money(r.int(4)?, &r.text(5)?)?,
        category_id: category_id(r.opt_int(6)?)?,
        attributes,
        active: r.flag(7)?,
        created_at: UnixMillis::from_millis(r.int(8)?),
        updated_at: UnixMillis::from_millis(r.int(9)?),
    })
}

/// One attribute from five columns starting at `first`: key, kind, text, number, boolean.
pub(crate) fn attribute_from(
    r: &impl Columns,
    first: usize,
) -> Result<(AttributeKey, AttributeValue), StorageError> {
    attribute(
        &r.text(first)?,
        &r.text(first + 1)?,
        r.opt_text(first + 2)?,
        r.opt_real(first + 3)?,
        r.opt_flag(first + 4)?,
    )
}

pub(crate) fn category_from(r: &impl Columns) -> Result<Category, StorageError> {
    Ok(Category {
        id: CategoryId::parse(r.int(0)?).map_err(corrupt)?,
        name: r.text(1)?,
        parent_id: category_id(r.opt_int(2)?)?,
        created_at: UnixMillis::from_millis(r.int(3)?),
        updated_at: UnixMillis::from_millis(r.int(4)?),
    })
}

pub(crate) fn warehouse_from(r: &impl Columns) -> Result<Warehouse, StorageError> {
    Ok(Warehouse {
        id: WarehouseId::parse(r.int(0)?).map_err(corrupt)?,
        code: r.text(1)?,
        name: r.text(2)?,
        active: r.flag(3)?,
        created_at: UnixMillis::from_millis(r.int(4)?),
        updated_at: UnixMillis::from_millis(r.int(5)?),
    })
}

/// A parameter of a statement built at run time, bound by each backend in its own type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    Real(Option<f64>),
    Flag(Option<bool>),
}

/// The SQL dialect a statement is written for: the full-text parts differ (FTS5 against
/// PostgreSQL's tsvector); everything else is one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The FTS5 query of a search: every word a quoted string (so no character is FTS5 syntax),
/// all required, the last a prefix.
pub(crate) fn fts5_query(search: &SearchText) -> String {
    let words = search.words();
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        out.push_str(&w.replace('"', "\"\""));
        out.push('"');
        if i + 1 == words.len() {
            out.push('*');
        }
    }
    out
}

/// The tsquery of a search: every word a quoted lexeme (so no character is a tsquery
/// operator), `&`-joined, the last a prefix (`:*`).
pub(crate) fn tsquery(search: &SearchText) -> String {
    let words = search.words();
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push_str(" & ");
        }
        out.push('\'');
        out.push_str(&w.replace('\\', "\\\\").replace('\'', "''"));
        out.push('\'');
        if i + 1 == words.len() {
            out.push_str(":*");
        }
    }
    out
}

/// The parameters of a statement built at run time, named `$1`, `$2`, ... as they are added.
#[derive(Default)]
struct Args(Vec<Arg>);

impl Args {
    fn add(&mut self, v: Arg) -> String {
        self.0.push(v);
        format!("${}", self.0.len())
    }
}

/// The `FROM ... WHERE ...` of the products `q`'s filters keep (never deleted ones), and the
/// expression of a product's search score there (higher is better; 0 without search words or
/// unless `relevance`). The search's parameter, when there is one, is `$1`.
fn filtered(q: &ProductQuery, d: Dialect, relevance: bool, args: &mut Args) -> (String, String) {
    let zero = "CAST(0 AS DOUBLE PRECISION)".to_owned();
    let (score, mut sql) = match (&q.search, d) {
        (None, _) => (
            zero,
            "FROM products p WHERE p.deleted_at_ms IS NULL".to_owned(),
        ),
        (Some(s), Dialect::Sqlite) => {
            let a = args.add(Arg::Text(fts5_query(s)));
            // bm25 is lower for a better match; a word in the name weighs 10 times one in the
            // description, one in an attribute value 5 times.
            let score = if relevance {
                "-bm25(products_fts, 10.0, 1.0, 5.0)".to_owned()
            } else {
                zero
            };
            (
                score,
                format!(
                    "FROM products_fts JOIN products p ON p.id = products_fts.rowid \
                     WHERE products_fts MATCH {a} AND p.deleted_at_ms IS NULL"
                ),
            )
        }
        (Some(s), Dialect::Postgres) => {
            let a = args.add(Arg::Text(tsquery(s)));
            // Weights A (name) 1.0, B (attribute values) 0.4, C (description) 0.2.
            let score = if relevance {
                format!(
                    "CAST(ts_rank(p.search_vector, CAST({a}::text AS tsquery)) AS DOUBLE PRECISION)"
                )
            } else {
                zero
            };
            (
                score,
                format!(
                    "FROM products p WHERE p.search_vector @@ CAST({a}::text AS tsquery) \
                     AND p.deleted_at_ms IS NULL"
                ),
            )
        }
    };
    if let Some(active) = q.active {
        let a = args.add(Arg::Flag(Some(active)));
        sql.push_str(&format!(" AND p.active = {a}"));
    }
    if let Some(c) = q.category {
        let a = args.add(Arg::Int(c.get()));
        sql.push_str(&format!(
            " AND p.category_id IN (WITH RECURSIVE sub(id) AS (SELECT CAST({a} AS BIGINT) \
             UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id) \
             SELECT id FROM sub)"
        ));
    }
    if let Some(min) = q.min_price {
        let a = args.add(Arg::Int(min));
        sql.push_str(&format!(" AND p.price_minor >= {a}"));
    }
    if let Some(max) = q.max_price {
        let a = args.add(Arg::Int(max));
        sql.push_str(&format!(" AND p.price_minor <= {a}"));
    }
    if let Some(currency) = q.currency {
        let a = args.add(Arg::Text(currency.as_str().to_owned()));
        sql.push_str(&format!(" AND p.currency = {a}"));
    }
    for f in &q.attributes {
        let key = args.add(Arg::Text(f.key.as_str().to_owned()));
        let text = args.add(Arg::Text(f.text.clone()));
        let number = args.add(Arg::Real(f.number));
        let boolean = args.add(Arg::Flag(f.boolean));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM product_attributes a WHERE a.product_id = p.id \
             AND a.key = {key} AND (a.text_value = {text} \
             OR a.number_value = CAST({number} AS DOUBLE PRECISION) \
             OR a.bool_value = CAST({boolean} AS BOOLEAN)))"
        ));
    }
    (score, sql)
}

/// The statement listing one page of products as `q` asks, and its parameters in order: one
/// text for both backends but for the full-text parts (each parameter is named once, in
/// ascending order, as SQLite's numbering by first appearance needs; casts type the parameters
/// PostgreSQL cannot infer). Rows are [`PRODUCT_COLUMNS`] and the score.
pub(crate) fn product_page(q: &ProductQuery, d: Dialect) -> (String, Vec<Arg>) {
    let mut args = Args::default();
    if q.sort == ProductSort::Relevance {
        // The matches are scored in full (the ranking needs every score), the page is cut from
        // them (best score first, ties by id), and only the page is joined to its products.
        let (score, from_where) = filtered(q, d, true, &mut args);
        let mut sql = format!(
            "WITH hits AS MATERIALIZED (SELECT p.id AS id, {score} AS score {from_where}), \
             page AS MATERIALIZED (SELECT id, score FROM hits"
        );
        if let Some(after) = &q.after {
            let bits = match &after.key {
                SortKey::Int(n) => *n,
                SortKey::Text(_) => 0,
            };
            let k = args.add(Arg::Real(Some(f64::from_bits(bits as u64))));
            let id = args.add(Arg::Int(after.id.get()));
            sql.push_str(&format!(
                " WHERE (score < CAST({k} AS DOUBLE PRECISION) \
                 OR (score = CAST({k} AS DOUBLE PRECISION) AND id > CAST({id} AS BIGINT)))"
            ));
        }
        let limit = args.add(Arg::Int(i64::from(q.limit)));
        sql.push_str(&format!(
            " ORDER BY score DESC, id ASC LIMIT {limit}) \
             SELECT {PRODUCT_COLUMNS}, g.score FROM page g JOIN products p ON p.id = g.id \
             ORDER BY g.score DESC, g.id ASC"
        ));
        return (sql, args.0);
    }
    let (score, from_where) = filtered(q, d, false, &mut args);
    let mut sql = format!("SELECT {PRODUCT_COLUMNS}, {score} {from_where}");
    // The name column is stored under the "C" collation on PostgreSQL and compared bytewise on
    // SQLite: both order names by their bytes, so pages are the same on both.
    let (column, key_type) = match q.sort {
        ProductSort::CreatedAsc | ProductSort::CreatedDesc | ProductSort::Relevance => {
            ("p.created_at_ms", "BIGINT")
        }
        ProductSort::PriceAsc | ProductSort::PriceDesc => ("p.price_minor", "BIGINT"),
        ProductSort::NameAsc | ProductSort::NameDesc => ("p.name", "TEXT"),
    };
    let (cmp, dir) = if q.sort.descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = &q.after {
        let k = args.add(match &after.key {
            SortKey::Int(n) => Arg::Int(*n),
            SortKey::Text(t) => Arg::Text(t.clone()),
        });
        let id = args.add(Arg::Int(after.id.get()));
        sql.push_str(&format!(
            " AND ({column}, p.id) {cmp} (CAST({k} AS {key_type}), CAST({id} AS BIGINT))"
        ));
    }
    let limit = args.add(Arg::Int(i64::from(q.limit)));
    sql.push_str(&format!(
        " ORDER BY {column} {dir}, p.id {dir} LIMIT {limit}"
    ));
    (sql, args.0)
}

/// The statements counting the products `q`'s filters keep (cursor and limit aside) per
/// category (rows: category id, count) and per attribute value (rows: the five attribute
/// columns of [`attribute_from`], count), each with its parameters.
pub(crate) fn facet_statements(q: &ProductQuery, d: Dialect) -> [(String, Vec<Arg>); 2] {
    let mut args = Args::default();
    let (_, from_where) = filtered(q, d, false, &mut args);
    let categories = (
        format!("SELECT p.category_id, COUNT(*) {from_where} GROUP BY p.category_id"),
        args.0,
    );
    let mut args = Args::default();
    let (_, from_where) = filtered(q, d, false, &mut args);
    let attributes = (
        format!(
            "SELECT a.key, a.kind, a.text_value, a.number_value, a.bool_value, COUNT(*) \
             FROM product_attributes a WHERE a.product_id IN (SELECT p.id {from_where}) \
             GROUP BY a.key, a.kind, a.text_value, a.number_value, a.bool_value"
        ),
        args.0,
    );
    [categories, attributes]
}

/// The facets of the rows of [`facet_statements`].
pub(crate) fn facets_from(
    categories: Vec<(Option<i64>, i64)>,
    attributes: Vec<((AttributeKey, AttributeValue), i64)>,
) -> Result<Facets, StorageError> {
    Ok(Facets {
        categories: categories
            .into_iter()
            .map(|(c, n)| Ok((category_id(c)?, n)))
            .collect::<Result<_, StorageError>>()?,
        attributes: attributes
            .into_iter()
            .map(|((k, v), n)| (k, v, n))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use allot_domain::catalog::{AttributeFilter, Currency, Cursor, ProductId};

    use super::*;

    #[test]
    fn a_product_page_names_each_parameter_once_in_order() {
        let q = ProductQuery {
            category: Some(CategoryId::parse(3).expect("an id")),
            attributes: vec![AttributeFilter::parse("color", "red").expect("a filter")],
            search: SearchText::parse("50%_off").expect("a search"),
            min_price: Some(1),
            max_price: Some(9),
            currency: Some(Currency::parse("EUR").expect("a currency")),
            active: Some(true),
            sort: ProductSort::NameDesc,
            after: Some(Cursor {
                sort: ProductSort::NameDesc,
                key: SortKey::Text("m".to_owned()),
                id: ProductId::parse(7).expect("an id"),
            }),
            limit: 20,
            facets: true,
        };
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let (sql, args) = product_page(&q, d);
            assert!(crate::row::ascending_parameters(&sql), "{sql}");
            assert_eq!(args.len(), 13);
            assert_eq!(args[1], Arg::Flag(Some(true)));
            assert!(
                sql.ends_with("ORDER BY p.name DESC, p.id DESC LIMIT $13"),
                "{sql}"
            );
            for (sql, _) in facet_statements(&q, d) {
                assert!(crate::row::ascending_parameters(&sql), "{sql}");
            }
            let relevance = ProductQuery {
                sort: ProductSort::Relevance,
                after: Some(Cursor {
                    sort: ProductSort::Relevance,
                    key: SortKey::Int(1.5f64.to_bits() as i64),
                    id: ProductId::parse(7).expect("an id"),
                }),
                ..q.clone()
            };
            let (sql, args) = product_page(&relevance, d);
            assert!(crate::row::ascending_parameters(&sql), "{sql}");
            assert_eq!(args[10], Arg::Real(Some(1.5)));
        }
        assert_eq!(
            product_page(&q, Dialect::Sqlite).1[0],
            Arg::Text("\"50\" \"off\"*".to_owned())
        );
        assert_eq!(
            product_page(&q, Dialect::Postgres).1[0],
            Arg::Text("'50' & 'off':*".to_owned())
        );
    }
}

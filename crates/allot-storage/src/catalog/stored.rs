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

/// The tiers of a relevance ranking, best first: every word in the name; every word in the
/// name or the attribute values (some in an attribute value); every word anywhere (some only
/// in the description). Within a tier products come by id.
///
/// Why tiers and not a score (bm25, ts_rank): a score must be computed for every match before
/// the first page can be cut, and a short prefix typed in a search box matches a large part of
/// a catalog (at 100,000 products, three letters matched 61,000 of them: 40 ms of bm25 on
/// SQLite, 80 ms of heap and ts_rank on PostgreSQL). Each tier is read in id order and stops
/// at the page's end, so a page costs about the same whatever the number of matches.
const TIERS: [Tier; 3] = [Tier::Name, Tier::NameOrAttributes, Tier::Anywhere];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Name,
    NameOrAttributes,
    Anywhere,
}

impl Tier {
    /// The score a product of this tier has in a listing (and its cursor).
    fn score(self) -> f64 {
        match self {
            Tier::Name => 2.0,
            Tier::NameOrAttributes => 1.0,
            Tier::Anywhere => 0.0,
        }
    }
}

/// The FTS5 query of the products of `tier` exactly (each product in one tier).
fn fts5_tier(search: &SearchText, tier: Tier) -> String {
    let all = fts5_query(search);
    match tier {
        Tier::Name => format!("{{name}} : ({all})"),
        Tier::NameOrAttributes => {
            format!("{{name search_attributes}} : ({all}) NOT {{name}} : ({all})")
        }
        Tier::Anywhere => format!("({all}) NOT {{name search_attributes}} : ({all})"),
    }
}

/// The tsquery matching a product when at least one of the search's words does (the last a
/// prefix): implied by the tiers below the first, and given to PostgreSQL so that its estimate
/// of a tier's size comes from the column the tier needs (see [`filtered`]).
fn tsquery_any(search: &SearchText) -> String {
    tsquery(search).replace(" & ", " | ")
}

/// The `FROM ... WHERE ...` of the products `q`'s filters keep (never deleted ones), with the
/// search words matched anywhere, or (given a tier) exactly the products of that tier. The
/// search's parameters, when there are any, come first.
fn filtered(q: &ProductQuery, d: Dialect, tier: Option<Tier>, args: &mut Args) -> String {
    let mut sql = match (&q.search, d) {
        (None, _) => "FROM products p WHERE p.deleted_at_ms IS NULL".to_owned(),
        (Some(s), Dialect::Sqlite) => {
            let a = args.add(Arg::Text(match tier {
                None => fts5_query(s),
                Some(t) => fts5_tier(s, t),
            }));
            format!(
                "FROM products_fts JOIN products p ON p.id = products_fts.rowid \
                 WHERE products_fts MATCH {a} AND p.deleted_at_ms IS NULL"
            )
        }
        (Some(s), Dialect::Postgres) => {
            let a = args.add(Arg::Text(tsquery(s)));
            let all = format!("CAST({a}::text AS tsquery)");
            // A product of a lower tier has one of the words in the column that tier adds:
            // said outright, PostgreSQL's estimate of the tier's size comes from that column's
            // own statistics (a word frequent in names but in no attribute value would
            // otherwise look frequent in the second tier, and the page be sought by a walk of
            // the whole table in id order).
            let condition = match tier {
                None => format!("p.search_vector @@ {all}"),
                Some(Tier::Name) => format!("p.search_name @@ {all}"),
                Some(Tier::NameOrAttributes) => {
                    let any = args.add(Arg::Text(tsquery_any(s)));
                    format!(
                        "p.search_head @@ {all} \
                         AND NOT (p.search_name @@ {all}) \
                         AND p.search_attrs @@ CAST({any}::text AS tsquery)"
                    )
                }
                Some(Tier::Anywhere) => {
                    let any = args.add(Arg::Text(tsquery_any(s)));
                    format!(
                        "p.search_vector @@ {all} \
                         AND NOT (p.search_head @@ {all}) \
                         AND p.search_desc @@ CAST({any}::text AS tsquery)"
                    )
                }
            };
            format!("FROM products p WHERE {condition} AND p.deleted_at_ms IS NULL")
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
    sql
}

/// The statement listing one page of products as `q` asks, and its parameters in order: one
/// text for both backends but for the full-text parts (each parameter is named once, in
/// ascending order, as SQLite's numbering by first appearance needs; casts type the parameters
/// PostgreSQL cannot infer). Rows are [`PRODUCT_COLUMNS`] and the score.
pub(crate) fn product_page(q: &ProductQuery, d: Dialect) -> (String, Vec<Arg>) {
    let mut args = Args::default();
    if q.sort == ProductSort::Relevance && q.search.is_some() {
        // Each tier at or after the cursor's gives at most a page, in id order; the page is
        // the best of them. A cursor's score is a tier's (any other finite score sorts between
        // them): its tier is read after its id, the lower ones from their start.
        let after = q.after.as_ref().map(|c| {
            let bits = match &c.key {
                SortKey::Int(n) => *n,
                SortKey::Text(_) => 0,
            };
            (f64::from_bits(bits as u64), c.id.get())
        });
        let tiers: Vec<(Tier, i64)> = TIERS
            .into_iter()
            .filter_map(|t| match after {
                Some((k, _)) if t.score() > k => None,
                Some((k, id)) if t.score() == k => Some((t, id)),
                _ => Some((t, 0)),
            })
            .collect();
        let (with, parts) = match d {
            Dialect::Sqlite => (String::new(), sqlite_tiers(q, &tiers, &mut args)),
            Dialect::Postgres => postgres_tiers(q, &tiers, &mut args),
        };
        let union = if parts.is_empty() {
            // A cursor past every tier (only a forged one is): nothing after it.
            "SELECT 0 AS id, CAST(0 AS DOUBLE PRECISION) AS score WHERE 1 = 0".to_owned()
        } else {
            parts.join(" UNION ALL ")
        };
        let limit = args.add(Arg::Int(i64::from(q.limit)));
        let sql = format!(
            "{with}SELECT {PRODUCT_COLUMNS}, g.score FROM ({union}) g \
             JOIN products p ON p.id = g.id ORDER BY g.score DESC, g.id ASC LIMIT {limit}"
        );
        return (sql, args.0);
    }
    let from_where = filtered(q, d, None, &mut args);
    let mut sql = format!("SELECT {PRODUCT_COLUMNS}, CAST(0 AS DOUBLE PRECISION) {from_where}");
    // The name column is stored under the "C" collation on PostgreSQL and compared bytewise on
    // SQLite: both order names by their bytes, so pages are the same on both.
    let (column, key_type) = match q.sort {
        ProductSort::CreatedAsc | ProductSort::CreatedDesc => ("p.created_at_ms", "BIGINT"),
        // Without search words every product scores 0 (a cursor's key is that score's bits,
        // 0): by id.
        ProductSort::Relevance => ("CAST(0 AS BIGINT)", "BIGINT"),
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

/// The tiers' parts of a relevance page on SQLite: from each, at most a page after its start
/// id, in the rowid order FTS5 reads a match in (so each stops at the page's end).
fn sqlite_tiers(q: &ProductQuery, tiers: &[(Tier, i64)], args: &mut Args) -> Vec<String> {
    let mut parts = Vec::new();
    for (n, &(tier, after_id)) in tiers.iter().enumerate() {
        let score = tier.score();
        let from_where = filtered(q, Dialect::Sqlite, Some(tier), args);
        let after = args.add(Arg::Int(after_id));
        let limit = args.add(Arg::Int(i64::from(q.limit)));
        parts.push(format!(
            "SELECT id, score FROM (SELECT p.id AS id, \
             CAST({score:.1} AS DOUBLE PRECISION) AS score {from_where} \
             AND products_fts.rowid > CAST({after} AS BIGINT) \
             ORDER BY products_fts.rowid LIMIT {limit}) t{n}"
        ));
    }
    parts
}

/// The tiers of a relevance page on PostgreSQL, as a `WITH` of their matches and the parts
/// reading them: from each tier at most a page after its start id, in id order, and a tier
/// read only while the tiers above it hold less than a page.
///
/// PostgreSQL finds a tier's products one of two ways, and its planner cannot tell which is
/// cheap here: its estimate of a prefix's matches is a flat guess, and the tiers' conditions
/// are correlated. A walk of the primary key stops after a page when matches are dense but
/// reads the whole table when the tier is empty (180 ms at 100,000 products); a GIN bitmap is
/// quick when matches are few but reads every match's row before the first page when they are
/// many (150 ms for 6,000). So both are asked, each bounded: a walk of the next `20 x limit`
/// products in id order (a subquery with a limit, which the planner cannot turn into an index
/// search), and, only when that window held less than a page (so the tier is sparse there),
/// the GIN bitmaps of the tier's columns (`id + 0` keeps the planner from walking the key
/// again). A condition on the tiers above (no column of its own) is a one-time filter: a tier
/// not needed is not read at all.
fn postgres_tiers(
    q: &ProductQuery,
    tiers: &[(Tier, i64)],
    args: &mut Args,
) -> (String, Vec<String>) {
    let mut ctes = Vec::new();
    let mut parts = Vec::new();
    let mut above = Vec::new();
    for (n, &(tier, after_id)) in tiers.iter().enumerate() {
        let score = tier.score();
        let after = args.add(Arg::Int(after_id));
        // Twenty pages: with pages of 20 a sparse tier costs a walk of 400 rows (0.2 ms)
        // before its bitmap, and a tier the walk leaves short is sparser than 5% there, so its
        // bitmap reads few rows (a window of 100 pages cost 3 ms more per search, measured).
        let window = args.add(Arg::Int(i64::from(q.limit) * 20));
        let walked = filtered(q, Dialect::Postgres, Some(tier), args).replacen(
            "FROM products p WHERE ",
            &format!(
                "FROM (SELECT * FROM products WHERE id > CAST({after} AS BIGINT) \
                 ORDER BY id LIMIT {window}) p WHERE "
            ),
            1,
        );
        let limit = args.add(Arg::Int(i64::from(q.limit)));
        let needed = if above.is_empty() {
            String::new()
        } else {
            format!(" AND {} < {limit}", above.join(" + "))
        };
        ctes.push(format!(
            "w{n} AS MATERIALIZED (SELECT p.id AS id {walked}{needed} \
             ORDER BY p.id LIMIT {limit})"
        ));
        let indexed = filtered(q, Dialect::Postgres, Some(tier), args);
        ctes.push(format!(
            "h{n} AS MATERIALIZED (SELECT id FROM w{n} WHERE (SELECT COUNT(*) FROM w{n}) >= {limit} \
             UNION ALL (SELECT p.id {indexed}{needed} AND (SELECT COUNT(*) FROM w{n}) < {limit} \
             AND p.id > CAST({after} AS BIGINT) ORDER BY p.id + 0 LIMIT {limit}))"
        ));
        above.push(format!("(SELECT COUNT(*) FROM h{n})"));
        parts.push(format!(
            "SELECT id, CAST({score:.1} AS DOUBLE PRECISION) AS score FROM h{n}"
        ));
    }
    let with = if ctes.is_empty() {
        String::new()
    } else {
        format!("WITH {} ", ctes.join(", "))
    };
    (with, parts)
}

/// The statements counting the products `q`'s filters keep (cursor and limit aside) per
/// category (rows: category id, count) and per attribute value (rows: the five attribute
/// columns of [`attribute_from`], count), each with its parameters.
pub(crate) fn facet_statements(q: &ProductQuery, d: Dialect) -> [(String, Vec<Arg>); 2] {
    let mut args = Args::default();
    let from_where = filtered(q, d, None, &mut args);
    let categories = (
        format!("SELECT p.category_id, COUNT(*) {from_where} GROUP BY p.category_id"),
        args.0,
    );
    let mut args = Args::default();
    let from_where = filtered(q, d, None, &mut args);
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
                    key: SortKey::Int(1.0f64.to_bits() as i64),
                    id: ProductId::parse(7).expect("an id"),
                }),
                ..q.clone()
            };
            // A cursor in the second tier: the first is left out, the second starts after
            // the cursor's id, the third from its start.
            let (sql, args) = product_page(&relevance, d);
            assert!(crate::row::ascending_parameters(&sql), "{sql}");
            assert_eq!(sql.matches(" AS score ").count(), 2, "{sql}");
            assert!(args.contains(&Arg::Int(7)));
            // A forged cursor between tiers: the tiers below it, from their starts.
            let between = ProductQuery {
                after: Some(Cursor {
                    sort: ProductSort::Relevance,
                    key: SortKey::Int(1.5f64.to_bits() as i64),
                    id: ProductId::parse(7).expect("an id"),
                }),
                ..relevance.clone()
            };
            let (sql, args) = product_page(&between, d);
            assert!(crate::row::ascending_parameters(&sql), "{sql}");
            assert_eq!(sql.matches(" AS score ").count(), 2, "{sql}");
            assert!(!args.contains(&Arg::Int(7)));
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

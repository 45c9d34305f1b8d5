//! How the catalog is read back: the column lists both backends select and the mapping from
//! their rows to records.

use allot_domain::UnixMillis;
use allot_domain::catalog::{
    AttributeKey, AttributeValue, Attributes, CategoryId, ProductSort, SortKey, WarehouseId,
};

use super::{
    Category, Product, ProductQuery, Warehouse, attribute, category_id, corrupt, like_pattern,
    money, product_id,
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

/// The statement listing one page of products as `q` asks, and its parameters in order: one
/// text for both backends (each parameter is named once, in ascending order, as SQLite's
/// numbering by first appearance needs; casts type the parameters PostgreSQL cannot infer).
pub(crate) fn product_page(q: &ProductQuery) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.deleted_at_ms IS NULL");
    let mut args = Vec::new();
    let mut arg = |v: Arg| {
        args.push(v);
        format!("${}", args.len())
    };
    if let Some(active) = q.active {
        let a = arg(Arg::Flag(Some(active)));
        sql.push_str(&format!(" AND p.active = {a}"));
    }
    if let Some(c) = q.category {
        let a = arg(Arg::Int(c.get()));
        sql.push_str(&format!(
            " AND p.category_id IN (WITH RECURSIVE sub(id) AS (SELECT CAST({a} AS BIGINT) \
             UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id) \
             SELECT id FROM sub)"
        ));
    }
    if let Some(text) = &q.text {
        let a = arg(Arg::Text(like_pattern(text)));
        sql.push_str(&format!(" AND lower(p.name) LIKE {a} ESCAPE '\\'"));
    }
    if let Some(min) = q.min_price {
        let a = arg(Arg::Int(min));
        sql.push_str(&format!(" AND p.price_minor >= {a}"));
    }
    if let Some(max) = q.max_price {
        let a = arg(Arg::Int(max));
        sql.push_str(&format!(" AND p.price_minor <= {a}"));
    }
    if let Some(currency) = q.currency {
        let a = arg(Arg::Text(currency.as_str().to_owned()));
        sql.push_str(&format!(" AND p.currency = {a}"));
    }
    for f in &q.attributes {
        let key = arg(Arg::Text(f.key.as_str().to_owned()));
        let text = arg(Arg::Text(f.text.clone()));
        let number = arg(Arg::Real(f.number));
        let boolean = arg(Arg::Flag(f.boolean));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM product_attributes a WHERE a.product_id = p.id \
             AND a.key = {key} AND (a.text_value = {text} \
             OR a.number_value = CAST({number} AS DOUBLE PRECISION) \
             OR a.bool_value = CAST({boolean} AS BOOLEAN)))"
        ));
    }
    // The name column is stored under the "C" collation on PostgreSQL and compared bytewise on
    // SQLite: both order names by their bytes, so pages are the same on both.
    let (column, key_type) = match q.sort {
        ProductSort::CreatedAsc | ProductSort::CreatedDesc => ("p.created_at_ms", "BIGINT"),
        ProductSort::PriceAsc | ProductSort::PriceDesc => ("p.price_minor", "BIGINT"),
        ProductSort::NameAsc | ProductSort::NameDesc => ("p.name", "TEXT"),
    };
    let (cmp, dir) = if q.sort.descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = &q.after {
        let k = arg(match &after.key {
            SortKey::Int(n) => Arg::Int(*n),
            SortKey::Text(t) => Arg::Text(t.clone()),
        });
        let id = arg(Arg::Int(after.id.get()));
        sql.push_str(&format!(
            " AND ({column}, p.id) {cmp} (CAST({k} AS {key_type}), CAST({id} AS BIGINT))"
        ));
    }
    let limit = arg(Arg::Int(i64::from(q.limit)));
    sql.push_str(&format!(
        " ORDER BY {column} {dir}, p.id {dir} LIMIT {limit}"
    ));
    (sql, args)
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
            text: Some("50%_off".to_owned()),
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
        };
        let (sql, args) = product_page(&q);
        assert!(crate::row::ascending_parameters(&sql), "{sql}");
        assert_eq!(args.len(), 13);
        assert_eq!(args[0], Arg::Flag(Some(true)));
        assert_eq!(args[2], Arg::Text("%50\\%\\_off%".to_owned()));
        assert_eq!(args[12], Arg::Int(20));
        assert!(
            sql.ends_with("ORDER BY p.name DESC, p.id DESC LIMIT $13"),
            "{sql}"
        );
    }
}

//! How the catalog is read back: the column lists both backends select and the mapping from
//! their rows to records.

use allot_domain::UnixMillis;
use allot_domain::catalog::{AttributeKey, AttributeValue, Attributes, CategoryId, WarehouseId};

use super::{Category, Product, Warehouse, attribute, category_id, corrupt, money, product_id};
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

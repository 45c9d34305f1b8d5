//! Catalog operations on SQLite. Writes run on the single writer, each in its own savepoint, so
//! a check ("is this SKU free?", "has this category products?") and the write it allows can
//! never be separated by another write.

use allot_domain::UnixMillis;
use allot_domain::catalog::{Attributes, CategoryId, ProductId, WarehouseId};
use allot_domain::event::{EventType, NewEvent};
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::catalog::{
    Arg, CATEGORY_AND_ANCESTORS, CATEGORY_COLUMNS, Dialect, PRODUCT_COLUMNS, WAREHOUSE_COLUMNS,
    attribute_columns, attribute_from, category_from, corrupt, decide_parent, facet_statements,
    facets_from, product_from, product_id, product_page, search_attributes, warehouse_from,
};
use crate::event::{
    category_deleted_event, product_deleted_event, wall_now, warehouse_deleted_event,
};
use crate::{
    CatalogRefusal, CatalogResult, CatalogStore, Category, NewCategory, NewProduct, NewWarehouse,
    Product, ProductListing, ProductQuery, ScoredProduct, StorageError, Warehouse,
};

type Refusable<T> = Result<Result<T, CatalogRefusal>, StorageError>;

/// The product of a row of [`PRODUCT_COLUMNS`], with its attributes.
fn product_from_row(conn: &Connection, r: &Row<'_>) -> Result<Product, StorageError> {
    let attributes = attributes_of(conn, product_id(r.get(0)?)?)?;
    product_from(r, attributes)
}

fn attributes_of(conn: &Connection, id: ProductId) -> Result<Attributes, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, kind, text_value, number_value, bool_value FROM product_attributes
         WHERE product_id = ?1 ORDER BY key",
    )?;
    let mut rows = stmt.query(params![id.get()])?;
    let mut map = std::collections::BTreeMap::new();
    while let Some(r) = rows.next()? {
        let (k, v) = attribute_from(r, 0)?;
        map.insert(k, v);
    }
    Attributes::new(map).map_err(corrupt)
}

pub(super) fn product(conn: &Connection, id: ProductId) -> Result<Option<Product>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = ?1 AND p.deleted_at_ms IS NULL"
    ))?;
    let mut rows = stmt.query(params![id.get()])?;
    match rows.next()? {
        Some(r) => Ok(Some(product_from_row(conn, r)?)),
        None => Ok(None),
    }
}

fn live_product_exists(conn: &Connection, id: ProductId) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM products WHERE id = ?1 AND deleted_at_ms IS NULL")?
        .exists(params![id.get()])?)
}

fn category_exists(conn: &Connection, id: CategoryId) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM categories WHERE id = ?1")?
        .exists(params![id.get()])?)
}

/// Why `new` cannot be stored as product `except` (or as a new product), if it cannot.
fn product_refusal(
    conn: &Connection,
    new: &NewProduct,
    except: Option<ProductId>,
) -> Result<Option<CatalogRefusal>, StorageError> {
    let holder: Option<i64> = conn
        .prepare_cached("SELECT id FROM products WHERE sku_key = ?1 AND deleted_at_ms IS NULL")?
        .query_row(params![new.sku.key()], |r| r.get(0))
        .optional()?;
    if holder.is_some_and(|h| Some(h) != except.map(ProductId::get)) {
        return Ok(Some(CatalogRefusal::SkuTaken));
    }
    if let Some(c) = new.category_id
        && !category_exists(conn, c)?
    {
        return Ok(Some(CatalogRefusal::CategoryNotFound));
    }
    Ok(None)
}

fn put_attributes(
    conn: &Connection,
    id: ProductId,
    attributes: &Attributes,
) -> Result<(), StorageError> {
    conn.prepare_cached("DELETE FROM product_attributes WHERE product_id = ?1")?
        .execute(params![id.get()])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO product_attributes (product_id, key, kind, text_value, number_value, bool_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (key, value) in attributes.iter() {
        let (text, number, boolean) = attribute_columns(value);
        insert.execute(params![
            id.get(),
            key.as_str(),
            value.kind(),
            text,
            number,
            boolean
        ])?;
    }
    Ok(())
}

pub(super) fn create_product(
    conn: &Connection,
    new: &NewProduct,
    now: UnixMillis,
) -> Refusable<Product> {
    if let Some(refusal) = product_refusal(conn, new, None)? {
        return Ok(Err(refusal));
    }
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO products (sku, sku_key, name, description, price_minor, currency,
                                   category_id, active, created_at_ms, updated_at_ms,
                                   search_attributes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) RETURNING id",
        )?
        .query_row(
            params![
                new.sku.as_str(),
                new.sku.key(),
                new.name.as_str(),
                new.description.as_str(),
                new.price.amount_minor(),
                new.price.currency().as_str(),
                new.category_id.map(CategoryId::get),
                new.active,
                now.as_millis(),
                search_attributes(&new.attributes),
            ],
            |r| r.get(0),
        )?;
    let id = product_id(id)?;
    put_attributes(conn, id, &new.attributes)?;
    let payload = crate::event::product_payload(id.get(), new);
    super::event::append(conn, NewEvent::api(EventType::ProductCreated, now, payload))?;
    product(conn, id)?
        .map(Ok)
        .ok_or_else(|| corrupt("a product just stored is missing"))
}

pub(super) fn update_product(
    conn: &Connection,
    id: ProductId,
    new: &NewProduct,
    now: UnixMillis,
) -> Refusable<Product> {
    if !live_product_exists(conn, id)? {
        return Ok(Err(CatalogRefusal::NotFound));
    }
    if let Some(refusal) = product_refusal(conn, new, Some(id))? {
        return Ok(Err(refusal));
    }
    let (was_minor, was_currency): (i64, String) = conn
        .prepare_cached("SELECT price_minor, currency FROM products WHERE id = ?1")?
        .query_row(params![id.get()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    conn.prepare_cached(
        "UPDATE products SET sku = ?2, sku_key = ?3, name = ?4, description = ?5,
                price_minor = ?6, currency = ?7, category_id = ?8, active = ?9, updated_at_ms = ?10,
                search_attributes = ?11
         WHERE id = ?1",
    )?
    .execute(params![
        id.get(),
        new.sku.as_str(),
        new.sku.key(),
        new.name.as_str(),
        new.description.as_str(),
        new.price.amount_minor(),
        new.price.currency().as_str(),
        new.category_id.map(CategoryId::get),
        new.active,
        now.as_millis(),
        search_attributes(&new.attributes),
    ])?;
    put_attributes(conn, id, &new.attributes)?;
    let payload = crate::event::product_payload(id.get(), new);
    super::event::append(conn, NewEvent::api(EventType::ProductUpdated, now, payload))?;
    let was = (was_minor, was_currency.as_str());
    if let Some(e) = crate::event::product_price_event(id.get(), was, new, now) {
        super::event::append(conn, e)?;
    }
    product(conn, id)?
        .map(Ok)
        .ok_or_else(|| corrupt("a product just updated is missing"))
}

pub(super) fn delete_product(conn: &Connection, id: ProductId, now: UnixMillis) -> Refusable<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE products SET deleted_at_ms = ?2, active = 0, updated_at_ms = ?2
             WHERE id = ?1 AND deleted_at_ms IS NULL",
        )?
        .execute(params![id.get(), now.as_millis()])?;
    Ok(if changed == 1 {
        super::event::append(conn, product_deleted_event(id.get(), now))?;
        Ok(())
    } else {
        Err(CatalogRefusal::NotFound)
    })
}

fn bind(args: Vec<Arg>) -> impl Iterator<Item = Value> {
    args.into_iter().map(|a| match a {
        Arg::Int(n) => Value::Integer(n),
        Arg::Text(t) => Value::Text(t),
        Arg::Real(r) => r.map_or(Value::Null, Value::Real),
        Arg::Flag(b) => b.map_or(Value::Null, |b| Value::Integer(i64::from(b))),
    })
}

/// A page of products and, when asked, their facets, in one read transaction (one snapshot).
pub(super) fn products(
    conn: &Connection,
    q: &ProductQuery,
) -> Result<ProductListing, StorageError> {
    let tx = conn.unchecked_transaction()?;
    let (sql, args) = product_page(q, Dialect::Sqlite);
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(bind(args)))?;
    let mut products = Vec::new();
    while let Some(r) = rows.next()? {
        products.push(ScoredProduct {
            product: product_from_row(&tx, r)?,
            score: r.get(10)?,
        });
    }
    drop(rows);
    drop(stmt);
    let facets = if q.facets {
        let [(categories, c_args), (attributes, a_args)] = facet_statements(q, Dialect::Sqlite);
        let categories = tx
            .prepare_cached(&categories)?
            .query_map(rusqlite::params_from_iter(bind(c_args)), |r| {
                Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = tx.prepare_cached(&attributes)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(bind(a_args)))?;
        let mut attributes = Vec::new();
        while let Some(r) = rows.next()? {
            attributes.push((attribute_from(r, 0)?, r.get::<_, i64>(5)?));
        }
        Some(facets_from(categories, attributes)?)
    } else {
        None
    };
    Ok(ProductListing { products, facets })
}

// Categories.

pub(super) fn category(
    conn: &Connection,
    id: CategoryId,
) -> Result<Option<Category>, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = ?1"
    ))?
    .query_row(params![id.get()], |r| Ok(category_from(r)))
    .optional()?
    .transpose()
}

pub(super) fn categories(conn: &Connection) -> Result<Vec<Category>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY id"
    ))?;
    let rows = stmt.query_map([], |r| Ok(category_from(r)))?;
    rows.map(|r| -> Result<Category, StorageError> { r? })
        .collect()
}

pub(super) fn create_category(
    conn: &Connection,
    new: &NewCategory,
    now: UnixMillis,
) -> Refusable<Category> {
    const KIND: EventType = EventType::CategoryCreated;
    if let Some(p) = new.parent_id
        && !category_exists(conn, p)?
    {
        return Ok(Err(CatalogRefusal::ParentNotFound));
    }
    let category = conn
        .prepare_cached(&format!(
            "INSERT INTO categories (name, parent_id, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?3) RETURNING {CATEGORY_COLUMNS}"
        ))?
        .query_row(
            params![
                new.name.as_str(),
                new.parent_id.map(CategoryId::get),
                now.as_millis()
            ],
            |r| Ok(category_from(r)),
        )??;
    let payload = crate::event::category_payload(category.id.get(), new);
    super::event::append(conn, NewEvent::api(KIND, now, payload))?;
    Ok(Ok(category))
}

pub(super) fn update_category(
    conn: &Connection,
    id: CategoryId,
    new: &NewCategory,
    now: UnixMillis,
) -> Refusable<Category> {
    const KIND: EventType = EventType::CategoryUpdated;
    if !category_exists(conn, id)? {
        return Ok(Err(CatalogRefusal::NotFound));
    }
    if let Some(p) = new.parent_id {
        let line = conn
            .prepare_cached(CATEGORY_AND_ANCESTORS)?
            .query_map(params![p.get()], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        if let Err(refusal) = decide_parent(id, &line) {
            return Ok(Err(refusal));
        }
    }
    let category = conn
        .prepare_cached(&format!(
            "UPDATE categories SET name = ?2, parent_id = ?3, updated_at_ms = ?4 WHERE id = ?1
             RETURNING {CATEGORY_COLUMNS}"
        ))?
        .query_row(
            params![
                id.get(),
                new.name.as_str(),
                new.parent_id.map(CategoryId::get),
                now.as_millis()
            ],
            |r| Ok(category_from(r)),
        )??;
    let payload = crate::event::category_payload(category.id.get(), new);
    super::event::append(conn, NewEvent::api(KIND, now, payload))?;
    Ok(Ok(category))
}

pub(super) fn delete_category(conn: &Connection, id: CategoryId) -> Refusable<()> {
    if !category_exists(conn, id)? {
        return Ok(Err(CatalogRefusal::NotFound));
    }
    let in_use = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM categories WHERE parent_id = ?1)
                 OR EXISTS (SELECT 1 FROM products WHERE category_id = ?1 AND deleted_at_ms IS NULL)",
        )?
        .query_row(params![id.get()], |r| r.get::<_, bool>(0))?;
    if in_use {
        return Ok(Err(CatalogRefusal::CategoryInUse));
    }
    // Deleted products keep their rows; they lose the category that is going away.
    conn.prepare_cached("UPDATE products SET category_id = NULL WHERE category_id = ?1")?
        .execute(params![id.get()])?;
    conn.prepare_cached("DELETE FROM categories WHERE id = ?1")?
        .execute(params![id.get()])?;
    super::event::append(conn, category_deleted_event(id.get(), wall_now()))?;
    Ok(Ok(()))
}

// Warehouses.

pub(super) fn warehouse(
    conn: &Connection,
    id: WarehouseId,
) -> Result<Option<Warehouse>, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE id = ?1"
    ))?
    .query_row(params![id.get()], |r| Ok(warehouse_from(r)))
    .optional()?
    .transpose()
}

pub(super) fn warehouses(conn: &Connection) -> Result<Vec<Warehouse>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {WAREHOUSE_COLUMNS} FROM warehouses ORDER BY id"
    ))?;
    let rows = stmt.query_map([], |r| Ok(warehouse_from(r)))?;
    rows.map(|r| -> Result<Warehouse, StorageError> { r? })
        .collect()
}

fn code_holder(conn: &Connection, code: &str) -> Result<Option<i64>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT id FROM warehouses WHERE code = ?1")?
        .query_row(params![code], |r| r.get(0))
        .optional()?)
}

pub(super) fn create_warehouse(
    conn: &Connection,
    new: &NewWarehouse,
    now: UnixMillis,
) -> Refusable<Warehouse> {
    const KIND: EventType = EventType::WarehouseCreated;
    if code_holder(conn, new.code.as_str())?.is_some() {
        return Ok(Err(CatalogRefusal::WarehouseCodeTaken));
    }
    let warehouse = conn
        .prepare_cached(&format!(
            "INSERT INTO warehouses (code, name, active, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?4) RETURNING {WAREHOUSE_COLUMNS}"
        ))?
        .query_row(
            params![
                new.code.as_str(),
                new.name.as_str(),
                new.active,
                now.as_millis()
            ],
            |r| Ok(warehouse_from(r)),
        )??;
    let payload = crate::event::warehouse_payload(warehouse.id.get(), new);
    super::event::append(conn, NewEvent::api(KIND, now, payload))?;
    Ok(Ok(warehouse))
}

pub(super) fn update_warehouse(
    conn: &Connection,
    id: WarehouseId,
    new: &NewWarehouse,
    now: UnixMillis,
) -> Refusable<Warehouse> {
    const KIND: EventType = EventType::WarehouseUpdated;
    if warehouse(conn, id)?.is_none() {
        return Ok(Err(CatalogRefusal::NotFound));
    }
    if code_holder(conn, new.code.as_str())?.is_some_and(|h| h != id.get()) {
        return Ok(Err(CatalogRefusal::WarehouseCodeTaken));
    }
    let warehouse = conn
        .prepare_cached(&format!(
            "UPDATE warehouses SET code = ?2, name = ?3, active = ?4, updated_at_ms = ?5
             WHERE id = ?1 RETURNING {WAREHOUSE_COLUMNS}"
        ))?
        .query_row(
            params![
                id.get(),
                new.code.as_str(),
                new.name.as_str(),
                new.active,
                now.as_millis()
            ],
            |r| Ok(warehouse_from(r)),
        )??;
    let payload = crate::event::warehouse_payload(warehouse.id.get(), new);
    super::event::append(conn, NewEvent::api(KIND, now, payload))?;
    Ok(Ok(warehouse))
}

pub(super) fn delete_warehouse(conn: &Connection, id: WarehouseId) -> Refusable<()> {
    let deleted = conn
        .prepare_cached("DELETE FROM warehouses WHERE id = ?1")?
        .execute(params![id.get()]);
    let changed = match deleted {
        Ok(n) => n,
        // Stock (or anything else) refers to it; the statement left nothing behind.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            return Ok(Err(CatalogRefusal::WarehouseInUse));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(if changed == 1 {
        super::event::append(conn, warehouse_deleted_event(id.get(), wall_now()))?;
        Ok(())
    } else {
        Err(CatalogRefusal::NotFound)
    })
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn create_product(&self, new: NewProduct, now: UnixMillis) -> CatalogResult<Product> {
        self.write(1 + new.attributes.len(), move |conn, _| {
            create_product(conn, &new, now)
        })
        .await
    }

    async fn product(&self, id: ProductId) -> Result<Option<Product>, StorageError> {
        self.read(move |conn| product(conn, id)).await
    }

    async fn update_product(
        &self,
        id: ProductId,
        new: NewProduct,
        now: UnixMillis,
    ) -> CatalogResult<Product> {
        self.write(1 + new.attributes.len(), move |conn, _| {
            update_product(conn, id, &new, now)
        })
        .await
    }

    async fn delete_product(&self, id: ProductId, now: UnixMillis) -> CatalogResult<()> {
        self.write(1, move |conn, _| delete_product(conn, id, now))
            .await
    }

    async fn products(&self, query: ProductQuery) -> Result<ProductListing, StorageError> {
        self.read(move |conn| products(conn, &query)).await
    }

    async fn create_category(&self, new: NewCategory, now: UnixMillis) -> CatalogResult<Category> {
        self.write(1, move |conn, _| create_category(conn, &new, now))
            .await
    }

    async fn category(&self, id: CategoryId) -> Result<Option<Category>, StorageError> {
        self.read(move |conn| category(conn, id)).await
    }

    async fn categories(&self) -> Result<Vec<Category>, StorageError> {
        self.read(categories).await
    }

    async fn update_category(
        &self,
        id: CategoryId,
        new: NewCategory,
        now: UnixMillis,
    ) -> CatalogResult<Category> {
        self.write(1, move |conn, _| update_category(conn, id, &new, now))
            .await
    }

    async fn delete_category(&self, id: CategoryId) -> CatalogResult<()> {
        self.write(1, move |conn, _| delete_category(conn, id))
            .await
    }

    async fn create_warehouse(
        &self,
        new: NewWarehouse,
        now: UnixMillis,
    ) -> CatalogResult<Warehouse> {
        self.write(1, move |conn, _| create_warehouse(conn, &new, now))
            .await
    }

    async fn warehouse(&self, id: WarehouseId) -> Result<Option<Warehouse>, StorageError> {
        self.read(move |conn| warehouse(conn, id)).await
    }

    async fn warehouses(&self) -> Result<Vec<Warehouse>, StorageError> {
        self.read(warehouses).await
    }

    async fn update_warehouse(
        &self,
        id: WarehouseId,
        new: NewWarehouse,
        now: UnixMillis,
    ) -> CatalogResult<Warehouse> {
        self.write(1, move |conn, _| update_warehouse(conn, id, &new, now))
            .await
    }

    async fn delete_warehouse(&self, id: WarehouseId) -> CatalogResult<()> {
        self.write(1, move |conn, _| delete_warehouse(conn, id))
            .await
    }
}

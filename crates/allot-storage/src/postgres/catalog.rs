//! The catalog on PostgreSQL, correct across instances:
//! - SKU and warehouse code uniqueness are held by unique indexes; a violation is answered as
//!   a refusal, never an error;
//! - deleting a category locks its row first (`FOR UPDATE`), which a concurrent insert of a
//!   product or child naming it must wait for (the foreign-key check takes `FOR KEY SHARE`):
//!   either the insert commits first and the delete sees it (`category_in_use`), or the delete
//!   commits first and the insert fails its foreign key (`category not found`);
//! - moving categories is serialised by one transaction-scoped advisory lock, so two moves
//!   cannot together close a loop that neither sees alone.

use super::conn::Db;
use allot_domain::event::{EventType, NewEvent};
use std::collections::BTreeMap;

use allot_domain::UnixMillis;
use allot_domain::catalog::{Attributes, CategoryId, ProductId, WarehouseId};
use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::catalog::{
    Arg, CATEGORY_AND_ANCESTORS, CATEGORY_COLUMNS, Dialect, PRODUCT_COLUMNS, WAREHOUSE_COLUMNS,
    attribute_columns, attribute_from, category_from, corrupt, decide_parent, facet_statements,
    facets_from, product_from, product_id, product_page, search_attributes, warehouse_from,
};
use crate::event::{
    category_deleted_event, product_deleted_event, wall_now, warehouse_deleted_event,
};
use crate::row::Columns;
use crate::{
    CatalogRefusal, CatalogResult, CatalogStore, Category, NewCategory, NewProduct, NewWarehouse,
    Product, ProductListing, ProductQuery, ScoredProduct, StorageError, Warehouse,
};

/// The advisory lock taken by every move of a category (an arbitrary, fixed key).
const CATEGORY_TREE_LOCK: i64 = 0x616c_6c6f_7400_0007;

/// A refusal when `e` is the violation of a unique index or of a foreign key.
fn refusal_of<T>(
    e: tokio_postgres::Error,
    unique: CatalogRefusal,
    foreign_key: CatalogRefusal,
) -> CatalogResult<T> {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => Ok(Err(unique)),
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => Ok(Err(foreign_key)),
        _ => Err(e.into()),
    }
}

async fn attributes_of(
    client: &impl Db,
    ids: &[i64],
) -> Result<BTreeMap<i64, Attributes>, StorageError> {
    let rows = client
        .query(
            "SELECT product_id, key, kind, text_value, number_value, bool_value
             FROM product_attributes WHERE product_id = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut maps: BTreeMap<i64, BTreeMap<_, _>> = BTreeMap::new();
    for r in &rows {
        let (k, v) = attribute_from(r, 1)?;
        maps.entry(r.int(0)?).or_default().insert(k, v);
    }
    maps.into_iter()
        .map(|(id, m)| Ok((id, Attributes::new(m).map_err(corrupt)?)))
        .collect()
}

async fn products_from(client: &impl Db, rows: &[Row]) -> Result<Vec<Product>, StorageError> {
    let ids = rows
        .iter()
        .map(|r| r.int(0))
        .collect::<Result<Vec<i64>, _>>()?;
    let mut attributes = attributes_of(client, &ids).await?;
    rows.iter()
        .zip(&ids)
        .map(|(r, id)| product_from(r, attributes.remove(id).unwrap_or_default()))
        .collect()
}

async fn product(client: &impl Db, id: ProductId) -> Result<Option<Product>, StorageError> {
    let rows = client
        .query(
            &format!(
                "SELECT {PRODUCT_COLUMNS} FROM products p
                 WHERE p.id = $1 AND p.deleted_at_ms IS NULL"
            ),
            &[&id.get()],
        )
        .await?;
    Ok(products_from(client, &rows).await?.into_iter().next())
}

async fn put_attributes(
    client: &impl Db,
    id: ProductId,
    attributes: &Attributes,
) -> Result<(), StorageError> {
    client
        .execute(
            "DELETE FROM product_attributes WHERE product_id = $1",
            &[&id.get()],
        )
        .await?;
    if attributes.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::new();
    let mut kinds = Vec::new();
    let mut texts = Vec::new();
    let mut numbers = Vec::new();
    let mut booleans = Vec::new();
    for (k, v) in attributes.iter() {
        let (t, n, b) = attribute_columns(v);
        keys.push(k.as_str());
        kinds.push(v.kind());
        texts.push(t);
        numbers.push(n);
        booleans.push(b);
    }
    client
        .execute(
            "INSERT INTO product_attributes (product_id, key, kind, text_value, number_value, bool_value)
             SELECT $1, k, d, t, n, b
             FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::bool[]) AS u(k, d, t, n, b)",
            &[&id.get(), &keys, &kinds, &texts, &numbers, &booleans],
        )
        .await?;
    Ok(())
}

/// Runs a statement built at run time with its parameters.
async fn query_args(client: &impl Db, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StorageError> {
    let args: Vec<Box<dyn ToSql + Sync + Send>> = args
        .into_iter()
        .map(|a| -> Box<dyn ToSql + Sync + Send> {
            match a {
                Arg::Int(n) => Box::new(n),
                Arg::Text(t) => Box::new(t),
                Arg::Real(r) => Box::new(r),
                Arg::Flag(b) => Box::new(b),
            }
        })
        .collect();
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    Ok(client.query(sql, &params).await?)
}

fn product_params(new: &NewProduct) -> (String, i64, Option<i64>) {
    (
        new.sku.key(),
        new.price.amount_minor(),
        new.category_id.map(CategoryId::get),
    )
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn create_product(&self, new: NewProduct, now: UnixMillis) -> CatalogResult<Product> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let (sku_key, price, category) = product_params(&new);
        let inserted = tx
            .query_one(
                "INSERT INTO products (sku, sku_key, name, description, price_minor, currency,
                                       category_id, active, created_at_ms, updated_at_ms,
                                       search_attributes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING id",
                &[
                    &new.sku.as_str(),
                    &sku_key,
                    &new.name.as_str(),
                    &new.description.as_str(),
                    &price,
                    &new.price.currency().as_str(),
                    &category,
                    &new.active,
                    &now.as_millis(),
                    &search_attributes(&new.attributes),
                ],
            )
            .await;
        let id = match inserted {
            Ok(row) => product_id(row.int(0)?)?,
            Err(e) => {
                return refusal_of(
                    e,
                    CatalogRefusal::SkuTaken,
                    CatalogRefusal::CategoryNotFound,
                );
            }
        };
        put_attributes(&tx, id, &new.attributes).await?;
        let payload = crate::event::product_payload(id.get(), &new);
        let event = NewEvent::api(EventType::ProductCreated, now, payload);
        super::event::append(&tx, event).await?;
        let stored = product(&tx, id)
            .await?
            .ok_or_else(|| corrupt("a product just stored is missing"))?;
        super::commit(tx).await?;
        Ok(Ok(stored))
    }

    async fn product(&self, id: ProductId) -> Result<Option<Product>, StorageError> {
        let client = self.client().await?;
        product(&*client, id).await
    }

    async fn update_product(
        &self,
        id: ProductId,
        new: NewProduct,
        now: UnixMillis,
    ) -> CatalogResult<Product> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let (sku_key, price, category) = product_params(&new);
        // The price before, for `ProductPriceChanged` (the row locked until the commit).
        let Some(was) = tx
            .query_opt(
                "SELECT price_minor, currency FROM products
                 WHERE id = $1 AND deleted_at_ms IS NULL FOR UPDATE",
                &[&id.get()],
            )
            .await?
        else {
            return Ok(Err(CatalogRefusal::NotFound));
        };
        let (was_minor, was_currency): (i64, String) = (was.try_get(0)?, was.try_get(1)?);
        let updated = tx
            .query_opt(
                "UPDATE products SET sku = $2, sku_key = $3, name = $4, description = $5,
                        price_minor = $6, currency = $7, category_id = $8, active = $9,
                        updated_at_ms = $10, search_attributes = $11
                 WHERE id = $1 AND deleted_at_ms IS NULL RETURNING id",
                &[
                    &id.get(),
                    &new.sku.as_str(),
                    &sku_key,
                    &new.name.as_str(),
                    &new.description.as_str(),
                    &price,
                    &new.price.currency().as_str(),
                    &category,
                    &new.active,
                    &now.as_millis(),
                    &search_attributes(&new.attributes),
                ],
            )
            .await;
        match updated {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(Err(CatalogRefusal::NotFound)),
            Err(e) => {
                return refusal_of(
                    e,
                    CatalogRefusal::SkuTaken,
                    CatalogRefusal::CategoryNotFound,
                );
            }
        }
        put_attributes(&tx, id, &new.attributes).await?;
        let payload = crate::event::product_payload(id.get(), &new);
        let event = NewEvent::api(EventType::ProductUpdated, now, payload);
        super::event::append(&tx, event).await?;
        let was = (was_minor, was_currency.as_str());
        if let Some(e) = crate::event::product_price_event(id.get(), was, &new, now) {
            super::event::append(&tx, e).await?;
        }
        let stored = product(&tx, id)
            .await?
            .ok_or_else(|| corrupt("a product just updated is missing"))?;
        super::commit(tx).await?;
        Ok(Ok(stored))
    }

    async fn delete_product(&self, id: ProductId, now: UnixMillis) -> CatalogResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE products SET deleted_at_ms = $2, active = false, updated_at_ms = $2
                 WHERE id = $1 AND deleted_at_ms IS NULL",
                &[&id.get(), &now.as_millis()],
            )
            .await?;
        Ok(if changed == 1 {
            super::event::append(&tx, product_deleted_event(id.get(), now)).await?;
            super::commit(tx).await?;
            Ok(())
        } else {
            Err(CatalogRefusal::NotFound)
        })
    }

    async fn products(&self, q: ProductQuery) -> Result<ProductListing, StorageError> {
        let mut client = self.client().await?;
        // The page and its facets from one snapshot.
        let tx = client.snapshot().await?;
        // No parallel workers: a relevance page is a chain of small reads, and starting the
        // workers of a plan (10 ms here) cost more than the reads, even for a part a one-time
        // filter skips. A plan for these words, never a generic one: the connection keeps the
        // page's statement (postgres/conn.rs), and a generic plan cannot weigh how common the
        // searched words are (PostgreSQL's default takes one after five runs if its estimate
        // looks no worse). Measured: one pair without this setting 198 -> 112 searches/s, but
        // this benchmark's pairs swing 0.25x to 4x; with it, three pairs: median 1.03 against
        // the build before statements were kept (docs/PERFORMANCE.md).
        tx.batch_execute(
            "SET LOCAL max_parallel_workers_per_gather = 0;
             SET LOCAL plan_cache_mode = force_custom_plan",
        )
        .await?;
        let (sql, args) = product_page(&q, Dialect::Postgres);
        let rows = query_args(&tx, &sql, args).await?;
        let products = products_from(&tx, &rows)
            .await?
            .into_iter()
            .zip(&rows)
            .map(|(product, r)| {
                Ok(ScoredProduct {
                    product,
                    score: r.opt_real(10)?.unwrap_or(0.0),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        let facets = if q.facets {
            let [(categories, c_args), (attributes, a_args)] =
                facet_statements(&q, Dialect::Postgres);
            let categories = query_args(&tx, &categories, c_args)
                .await?
                .iter()
                .map(|r| Ok((r.opt_int(0)?, r.int(1)?)))
                .collect::<Result<Vec<_>, StorageError>>()?;
            let attributes = query_args(&tx, &attributes, a_args)
                .await?
                .iter()
                .map(|r| Ok((attribute_from(r, 0)?, r.int(5)?)))
                .collect::<Result<Vec<_>, StorageError>>()?;
            Some(facets_from(categories, attributes)?)
        } else {
            None
        };
        super::commit(tx).await?;
        Ok(ProductListing { products, facets })
    }

    async fn create_category(&self, new: NewCategory, now: UnixMillis) -> CatalogResult<Category> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .query_one(
                &format!(
                    "INSERT INTO categories (name, parent_id, created_at_ms, updated_at_ms)
                     VALUES ($1, $2, $3, $3) RETURNING {CATEGORY_COLUMNS}"
                ),
                &[
                    &new.name.as_str(),
                    &new.parent_id.map(CategoryId::get),
                    &now.as_millis(),
                ],
            )
            .await;
        match inserted {
            Ok(row) => {
                let category = category_from(&row)?;
                let payload = crate::event::category_payload(category.id.get(), &new);
                let event = NewEvent::api(EventType::CategoryCreated, now, payload);
                super::event::append(&tx, event).await?;
                super::commit(tx).await?;
                Ok(Ok(category))
            }
            // A parent id equal to the new row's own id passes the foreign key (the row refers to
            // itself) and fails `parent_id <> id`: the parent named did not exist.
            Err(e) if e.code() == Some(&SqlState::CHECK_VIOLATION) => {
                Ok(Err(CatalogRefusal::ParentNotFound))
            }
            Err(e) => refusal_of(e, CatalogRefusal::NotFound, CatalogRefusal::ParentNotFound),
        }
    }

    async fn category(&self, id: CategoryId) -> Result<Option<Category>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1"),
                &[&id.get()],
            )
            .await?
            .as_ref()
            .map(category_from)
            .transpose()
    }

    async fn categories(&self) -> Result<Vec<Category>, StorageError> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(category_from)
            .collect()
    }

    async fn update_category(
        &self,
        id: CategoryId,
        new: NewCategory,
        now: UnixMillis,
    ) -> CatalogResult<Category> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CATEGORY_TREE_LOCK])
            .await?;
        if tx
            .query_opt(
                "SELECT 1 FROM categories WHERE id = $1 FOR UPDATE",
                &[&id.get()],
            )
            .await?
            .is_none()
        {
            return Ok(Err(CatalogRefusal::NotFound));
        }
        if let Some(p) = new.parent_id {
            let line = tx
                .query(CATEGORY_AND_ANCESTORS, &[&p.get()])
                .await?
                .iter()
                .map(|r| r.int(0))
                .collect::<Result<Vec<i64>, _>>()?;
            if let Err(refusal) = decide_parent(id, &line) {
                return Ok(Err(refusal));
            }
        }
        let updated = tx
            .query_one(
                &format!(
                    "UPDATE categories SET name = $2, parent_id = $3, updated_at_ms = $4
                     WHERE id = $1 RETURNING {CATEGORY_COLUMNS}"
                ),
                &[
                    &id.get(),
                    &new.name.as_str(),
                    &new.parent_id.map(CategoryId::get),
                    &now.as_millis(),
                ],
            )
            .await;
        let category = match updated {
            Ok(row) => category_from(&row)?,
            Err(e) => {
                return refusal_of(e, CatalogRefusal::NotFound, CatalogRefusal::ParentNotFound);
            }
        };
        let payload = crate::event::category_payload(category.id.get(), &new);
        let event = NewEvent::api(EventType::CategoryUpdated, now, payload);
        super::event::append(&tx, event).await?;
        super::commit(tx).await?;
        Ok(Ok(category))
    }

    async fn delete_category(&self, id: CategoryId) -> CatalogResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if tx
            .query_opt(
                "SELECT 1 FROM categories WHERE id = $1 FOR UPDATE",
                &[&id.get()],
            )
            .await?
            .is_none()
        {
            return Ok(Err(CatalogRefusal::NotFound));
        }
        let in_use: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM categories WHERE parent_id = $1)
                     OR EXISTS (SELECT 1 FROM products
                                WHERE category_id = $1 AND deleted_at_ms IS NULL)",
                &[&id.get()],
            )
            .await?
            .flag(0)?;
        if in_use {
            return Ok(Err(CatalogRefusal::CategoryInUse));
        }
        tx.execute(
            "UPDATE products SET category_id = NULL WHERE category_id = $1",
            &[&id.get()],
        )
        .await?;
        match tx
            .execute("DELETE FROM categories WHERE id = $1", &[&id.get()])
            .await
        {
            Ok(_) => {}
            // A product or child that committed in between (it cannot, holding the row lock,
            // but the foreign key is the last word).
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                return Ok(Err(CatalogRefusal::CategoryInUse));
            }
            Err(e) => return Err(e.into()),
        }
        let event = category_deleted_event(id.get(), wall_now());
        super::event::append(&tx, event).await?;
        super::commit(tx).await?;
        Ok(Ok(()))
    }

    async fn create_warehouse(
        &self,
        new: NewWarehouse,
        now: UnixMillis,
    ) -> CatalogResult<Warehouse> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .query_one(
                &format!(
                    "INSERT INTO warehouses (code, name, active, created_at_ms, updated_at_ms)
                     VALUES ($1, $2, $3, $4, $4) RETURNING {WAREHOUSE_COLUMNS}"
                ),
                &[
                    &new.code.as_str(),
                    &new.name.as_str(),
                    &new.active,
                    &now.as_millis(),
                ],
            )
            .await;
        match inserted {
            Ok(row) => {
                let warehouse = warehouse_from(&row)?;
                let payload = crate::event::warehouse_payload(warehouse.id.get(), &new);
                let event = NewEvent::api(EventType::WarehouseCreated, now, payload);
                super::event::append(&tx, event).await?;
                super::commit(tx).await?;
                Ok(Ok(warehouse))
            }
            Err(e) => refusal_of(
                e,
                CatalogRefusal::WarehouseCodeTaken,
                CatalogRefusal::NotFound,
            ),
        }
    }

    async fn warehouse(&self, id: WarehouseId) -> Result<Option<Warehouse>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE id = $1"),
                &[&id.get()],
            )
            .await?
            .as_ref()
            .map(warehouse_from)
            .transpose()
    }

    async fn warehouses(&self) -> Result<Vec<Warehouse>, StorageError> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {WAREHOUSE_COLUMNS} FROM warehouses ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(warehouse_from)
            .collect()
    }

    async fn update_warehouse(
        &self,
        id: WarehouseId,
        new: NewWarehouse,
        now: UnixMillis,
    ) -> CatalogResult<Warehouse> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let updated = tx
            .query_opt(
                &format!(
                    "UPDATE warehouses SET code = $2, name = $3, active = $4, updated_at_ms = $5
                     WHERE id = $1 RETURNING {WAREHOUSE_COLUMNS}"
                ),
                &[
                    &id.get(),
                    &new.code.as_str(),
                    &new.name.as_str(),
                    &new.active,
                    &now.as_millis(),
                ],
            )
            .await;
        match updated {
            Ok(Some(row)) => {
                let warehouse = warehouse_from(&row)?;
                let payload = crate::event::warehouse_payload(warehouse.id.get(), &new);
                let event = NewEvent::api(EventType::WarehouseUpdated, now, payload);
                super::event::append(&tx, event).await?;
                super::commit(tx).await?;
                Ok(Ok(warehouse))
            }
            Ok(None) => Ok(Err(CatalogRefusal::NotFound)),
            Err(e) => refusal_of(
                e,
                CatalogRefusal::WarehouseCodeTaken,
                CatalogRefusal::NotFound,
            ),
        }
    }

    async fn delete_warehouse(&self, id: WarehouseId) -> CatalogResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = match tx
            .execute("DELETE FROM warehouses WHERE id = $1", &[&id.get()])
            .await
        {
            Ok(n) => n,
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                return Ok(Err(CatalogRefusal::WarehouseInUse));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(if changed == 1 {
            let event = warehouse_deleted_event(id.get(), wall_now());
            super::event::append(&tx, event).await?;
            super::commit(tx).await?;
            Ok(())
        } else {
            Err(CatalogRefusal::NotFound)
        })
    }
}

//! The catalog's part of the storage interface: products, categories, warehouses.
//!
//! A second trait beside [`crate::Store`] (which requires it), so the catalog's operations
//! stay together and every backend is made to implement them.

use allot_domain::UnixMillis;
use allot_domain::catalog::{
    AttributeFilter, AttributeKey, AttributeValue, Attributes, CategoryId, CategoryName, Currency,
    Cursor, Description, Money, ProductId, ProductName, ProductSort, SearchText, Sku,
    WarehouseCode, WarehouseId, WarehouseName,
};
use async_trait::async_trait;

use crate::StorageError;

mod rules;
mod stored;
pub(crate) use rules::*;
pub(crate) use stored::*;

/// A product as a client gives it (create, or replace with PUT); every field already valid.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Money,
    pub category_id: Option<CategoryId>,
    pub attributes: Attributes,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub category_id: Option<CategoryId>,
    pub attributes: Attributes,
    pub active: bool,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// One page of a product listing. Deleted products are never listed.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    /// Products of this category or of any category below it.
    pub category: Option<CategoryId>,
    /// Every filter must hold.
    pub attributes: Vec<AttributeFilter>,
    /// Full text: every word in the name, description or text attribute values, the last as a
    /// prefix.
    pub search: Option<SearchText>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub currency: Option<Currency>,
    pub active: Option<bool>,
    pub sort: ProductSort,
    /// Rows after this one in `sort` order.
    pub after: Option<Cursor>,
    pub limit: u32,
    /// Also count the whole filtered result per category and per attribute value.
    pub facets: bool,
}

/// A listed product and its search score (higher is a better match; 0 unless sorted by
/// relevance).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredProduct {
    pub product: Product,
    pub score: f64,
}

/// One page of a listing, with the facets of the whole filtered result when they were asked
/// for; both read from one snapshot.
#[derive(Debug, Clone, Default)]
pub struct ProductListing {
    pub products: Vec<ScoredProduct>,
    pub facets: Option<Facets>,
}

/// Counts over every product a query's filters keep (not only one page).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    /// Products per category (their own category, not its ancestors; `None`: no category),
    /// in no particular order.
    pub categories: Vec<(Option<CategoryId>, i64)>,
    /// Products per attribute key and value, in no particular order.
    pub attributes: Vec<(AttributeKey, AttributeValue, i64)>,
}

#[derive(Debug, Clone)]
pub struct NewCategory {
    pub name: CategoryName,
    pub parent_id: Option<CategoryId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: CategoryId,
    pub name: String,
    pub parent_id: Option<CategoryId>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct NewWarehouse {
    pub code: WarehouseCode,
    pub name: WarehouseName,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub code: String,
    pub name: String,
    pub active: bool,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// Why a catalog write was refused; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogRefusal {
    /// The product, category or warehouse addressed does not exist (or is deleted).
    NotFound,
    /// A live product holds this SKU (compared case-insensitively).
    SkuTaken,
    /// The product names a category that does not exist.
    CategoryNotFound,
    /// The category's parent does not exist.
    ParentNotFound,
    /// The new parent is the category itself or one of its descendants.
    CategoryCycle,
    /// The category has products or child categories.
    CategoryInUse,
    WarehouseCodeTaken,
    /// Rows of other tables (stock) refer to the warehouse.
    WarehouseInUse,
}

pub type CatalogResult<T> = Result<Result<T, CatalogRefusal>, StorageError>;

#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Stores a product, unless a live product holds its SKU or its category is unknown.
    async fn create_product(&self, new: NewProduct, now: UnixMillis) -> CatalogResult<Product>;

    /// The product unless it is deleted.
    async fn product(&self, id: ProductId) -> Result<Option<Product>, StorageError>;

    /// Replaces every field of a live product (attributes included).
    async fn update_product(
        &self,
        id: ProductId,
        new: NewProduct,
        now: UnixMillis,
    ) -> CatalogResult<Product>;

    /// Marks a live product deleted (and inactive): its row stays for what refers to it, it is
    /// hidden from reads and listings, and its SKU is free again.
    async fn delete_product(&self, id: ProductId, now: UnixMillis) -> CatalogResult<()>;

    /// A page of products, and their facets when `query.facets`.
    async fn products(&self, query: ProductQuery) -> Result<ProductListing, StorageError>;

    async fn create_category(&self, new: NewCategory, now: UnixMillis) -> CatalogResult<Category>;

    async fn category(&self, id: CategoryId) -> Result<Option<Category>, StorageError>;

    /// Every category, by id.
    async fn categories(&self) -> Result<Vec<Category>, StorageError>;

    /// Renames and moves a category; refuses a parent below the category itself.
    async fn update_category(
        &self,
        id: CategoryId,
        new: NewCategory,
        now: UnixMillis,
    ) -> CatalogResult<Category>;

    /// Deletes a category with no live products and no children, atomically with that check.
    async fn delete_category(&self, id: CategoryId) -> CatalogResult<()>;

    async fn create_warehouse(
        &self,
        new: NewWarehouse,
        now: UnixMillis,
    ) -> CatalogResult<Warehouse>;

    async fn warehouse(&self, id: WarehouseId) -> Result<Option<Warehouse>, StorageError>;

    /// Every warehouse, by id.
    async fn warehouses(&self) -> Result<Vec<Warehouse>, StorageError>;

    async fn update_warehouse(
        &self,
        id: WarehouseId,
        new: NewWarehouse,
        now: UnixMillis,
    ) -> CatalogResult<Warehouse>;

    /// Deletes a warehouse nothing refers to; one that holds stock is refused.
    async fn delete_warehouse(&self, id: WarehouseId) -> CatalogResult<()>;
}

// Helpers both backends use to turn stored columns back into domain values.

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

pub(crate) fn money(amount_minor: i64, currency: &str) -> Result<Money, StorageError> {
    Money::new(amount_minor, Currency::parse(currency).map_err(corrupt)?).map_err(corrupt)
}

pub(crate) fn product_id(raw: i64) -> Result<ProductId, StorageError> {
    ProductId::parse(raw).map_err(corrupt)
}

pub(crate) fn category_id(raw: Option<i64>) -> Result<Option<CategoryId>, StorageError> {
    raw.map(|id| CategoryId::parse(id).map_err(corrupt))
        .transpose()
}

/// One stored attribute row: key, kind, text, number, boolean.
pub(crate) fn attribute(
    key: &str,
    kind: &str,
    text: Option<String>,
    number: Option<f64>,
    boolean: Option<bool>,
) -> Result<(AttributeKey, AttributeValue), StorageError> {
    let key = AttributeKey::parse(key).map_err(corrupt)?;
    let value = match (kind, text, number, boolean) {
        ("text", Some(t), _, _) => AttributeValue::Text(t),
        ("number", _, Some(n), _) => AttributeValue::number(n).map_err(corrupt)?,
        ("boolean", _, _, Some(b)) => AttributeValue::Boolean(b),
        _ => return Err(corrupt(format!("attribute {key:?} of kind {kind:?}"))),
    };
    Ok((key, value))
}

/// The columns an attribute is stored in: text, number, boolean (one of them set).
pub(crate) fn attribute_columns(v: &AttributeValue) -> (Option<&str>, Option<f64>, Option<bool>) {
    match v {
        AttributeValue::Text(t) => (Some(t.as_str()), None, None),
        AttributeValue::Number(n) => (None, Some(*n), None),
        AttributeValue::Boolean(b) => (None, None, Some(*b)),
    }
}

/// What of a product's attributes is searched: its text values in key order, joined by
/// spaces (stored in `products.search_attributes`, which the full-text index covers).
pub(crate) fn search_attributes(attributes: &Attributes) -> String {
    let texts: Vec<&str> = attributes
        .iter()
        .filter_map(|(_, v)| match v {
            AttributeValue::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    texts.join(" ")
}

//! REST for the catalog: `/api/v1/products`, `/api/v1/categories`, `/api/v1/warehouses`.
//!
//! Bodies are typed (`ProductBody`, ...: the structs the OpenAPI document describes), then
//! parsed into domain types; a bad field, whatever is wrong with it (missing, wrong JSON
//! type, out of range), is answered naming that field (`http::extract`).

use std::collections::BTreeMap;

use allot_domain::DomainError;
use allot_domain::catalog::{
    ATTRIBUTE_FILTERS_MAX, AttributeFilter, AttributeKey, AttributeValue, Attributes, CategoryId,
    CategoryName, Currency, Cursor, Description, Money, ProductId, ProductName, ProductSort,
    SearchText, Sku, WarehouseCode, WarehouseId, WarehouseName,
};
use allot_storage::{
    Category, NewCategory, NewProduct, NewWarehouse, Product, ProductQuery, Warehouse,
};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery, PathId, field_id, whole, whole_required};
use super::{AppState, rfc3339};
use crate::ServiceError;
use crate::service::catalog::{CategoryNode, PAGE_DEFAULT, PAGE_MAX, ProductFacets};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", get(list_products).post(create_product))
        .route(
            "/api/v1/products/{id}",
            get(read_product).put(update_product).delete(delete_product),
        )
        .route(
            "/api/v1/categories",
            get(list_categories).post(create_category),
        )
        .route("/api/v1/categories/tree", get(category_tree))
        .route(
            "/api/v1/categories/{id}",
            get(read_category)
                .put(update_category)
                .delete(delete_category),
        )
        .route(
            "/api/v1/warehouses",
            get(list_warehouses).post(create_warehouse),
        )
        .route(
            "/api/v1/warehouses/{id}",
            get(read_warehouse)
                .put(update_warehouse)
                .delete(delete_warehouse),
        )
}

// Bodies into domain types.

/// A product's attributes: typed values, each refused naming `attributes` and its key.
fn attributes(map: Option<Map<String, Value>>) -> Result<Attributes, DomainError> {
    let mut out = BTreeMap::new();
    for (k, v) in map.unwrap_or_default() {
        let key = AttributeKey::parse(&k)?;
        let value = match v {
            Value::String(s) => AttributeValue::text(&s)?,
            Value::Number(n) => AttributeValue::number(n.as_f64().ok_or_else(|| {
                DomainError::invalid("attributes", format!("{k}: is not a number"))
            })?)?,
            Value::Bool(b) => AttributeValue::Boolean(b),
            _ => {
                return Err(DomainError::invalid(
                    "attributes",
                    format!("{k}: must be a string, a number or a boolean"),
                ));
            }
        };
        out.insert(key, value);
    }
    Attributes::new(out)
}

impl TryFrom<ProductBody> for NewProduct {
    type Error = DomainError;

    fn try_from(b: ProductBody) -> Result<Self, DomainError> {
        Ok(NewProduct {
            sku: Sku::parse(&b.sku)?,
            name: ProductName::parse(&b.name)?,
            description: b
                .description
                .as_deref()
                .map(Description::parse)
                .transpose()?
                .unwrap_or_default(),
            price: Money::new(b.price.amount_minor, Currency::parse(&b.price.currency)?)?,
            category_id: b
                .category_id
                .map(|id| field_id(id, "category_id", CategoryId::parse))
                .transpose()?,
            attributes: attributes(b.attributes)?,
            active: b.active.unwrap_or(true),
        })
    }
}

impl TryFrom<CategoryBody> for NewCategory {
    type Error = DomainError;

    fn try_from(b: CategoryBody) -> Result<Self, DomainError> {
        Ok(NewCategory {
            name: CategoryName::parse(&b.name)?,
            parent_id: b
                .parent_id
                .map(|id| field_id(id, "parent_id", CategoryId::parse))
                .transpose()?,
        })
    }
}

impl TryFrom<WarehouseBody> for NewWarehouse {
    type Error = DomainError;

    fn try_from(b: WarehouseBody) -> Result<Self, DomainError> {
        Ok(NewWarehouse {
            code: WarehouseCode::parse(&b.code)?,
            name: WarehouseName::parse(&b.name)?,
            active: b.active.unwrap_or(true),
        })
    }
}

// Products.

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct PriceView {
    /// Whole minor units (cents for EUR, won for KRW), 0 to 10^12.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole_required")]
    pub amount_minor: i64,
    /// Three upper-case letters (ISO 4217).
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductView {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: PriceView,
    pub category_id: Option<i64>,
    /// Typed values: strings, numbers, booleans.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        let attributes = p
            .attributes
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    AttributeValue::Text(t) => Value::String(t.clone()),
                    AttributeValue::Number(n) => {
                        serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                    }
                    AttributeValue::Boolean(b) => Value::Bool(*b),
                };
                (k.as_str().to_owned(), value)
            })
            .collect();
        ProductView {
            id: p.id.get(),
            sku: p.sku,
            name: p.name,
            description: p.description,
            price: PriceView {
                amount_minor: p.price.amount_minor(),
                currency: p.price.currency().as_str().to_owned(),
            },
            category_id: p.category_id.map(CategoryId::get),
            attributes,
            active: p.active,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// A product as created or replaced (PUT replaces every field; omitted optional fields take
/// their defaults).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ProductBody {
    /// 1 to 64 of A-Z a-z 0-9 - _ . (trimmed); unique among live products, case-insensitively.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// 1 to 200 characters, trimmed; no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// Up to 10,000 characters; default empty.
    #[schema(max_length = 10_000)]
    pub description: Option<String>,
    pub price: PriceView,
    /// An existing category, or null (the default).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub category_id: Option<i64>,
    /// Up to 50 entries; keys 1 to 64 of a-z 0-9 _; values strings (up to 500 characters),
    /// finite numbers or booleans.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    /// Default true.
    pub active: Option<bool>,
}

/// Create a product.
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog",
    request_body = ProductBody,
    responses(
        (status = 201, description = "Stored", body = ProductView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 409, description = "`sku_taken`: a live product holds this SKU", body = ErrorBody),
        (status = 422, description = "`invalid_argument`: the field named is missing or bad; nothing stored", body = ErrorBody)))]
pub(crate) async fn create_product(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ProductBody>,
) -> Result<(StatusCode, Json<ProductView>), ServiceError> {
    let new = body.try_into()?;
    let product = state.services.catalog.create_product(new).await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

/// A product (not a deleted one).
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 404, description = "No such product, or deleted", body = ErrorBody)))]
pub(crate) async fn read_product(
    State(state): State<AppState>,
    PathId(id): PathId<ProductId>,
) -> Result<Json<ProductView>, ServiceError> {
    let product = state.services.catalog.product(id).await?;
    Ok(Json(product.into()))
}

/// Replace a product: every field, attributes included.
#[utoipa::path(put, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Product id")),
    request_body = ProductBody,
    responses(
        (status = 200, description = "Stored", body = ProductView),
        (status = 404, description = "No such product, or deleted", body = ErrorBody),
        (status = 409, description = "`sku_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn update_product(
    State(state): State<AppState>,
    PathId(id): PathId<ProductId>,
    ApiJson(body): ApiJson<ProductBody>,
) -> Result<Json<ProductView>, ServiceError> {
    let new = body.try_into()?;
    let product = state.services.catalog.update_product(id, new).await?;
    Ok(Json(product.into()))
}

/// Delete a product: it is marked deleted and inactive, hidden from reads and listings, and
/// its SKU is free again; its row stays for the orders that refer to it.
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such product, or deleted already", body = ErrorBody)))]
pub(crate) async fn delete_product(
    State(state): State<AppState>,
    PathId(id): PathId<ProductId>,
) -> Result<StatusCode, ServiceError> {
    state.services.catalog.delete_product(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The listing's parameters; `attr.<key>=<value>` may be given any number of times besides
/// these (read from the query's pairs), and any other name is refused.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Products of this category or of any category below it.
    #[param(minimum = 1)]
    pub category: Option<i64>,
    /// Full-text search, at most 200 characters; no control characters. Its words (runs of
    /// letters and digits, case-insensitive) must all be in the name, the description or a
    /// text attribute value; the last word matches as a prefix ("lapt" finds "laptop"). Any
    /// other character only separates words (a text without words searches for nothing).
    /// With words and no `sort`, the listing is by relevance.
    #[param(max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub q: Option<String>,
    /// Lowest price, minor units, inclusive.
    pub min_price: Option<i64>,
    /// Highest price, minor units, inclusive.
    pub max_price: Option<i64>,
    /// Only prices in this currency.
    #[param(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Only active (true) or inactive (false) products; default both.
    pub active: Option<bool>,
    /// `created`, `-created`, `price`, `-price`, `name`, `-name`, `relevance` (best match of
    /// `q` first: every word in the name, then every word in the name or attribute values,
    /// then the rest); ties by id. Default `relevance` when `q` has words, else `created`.
    #[param(pattern = "^(-?(created|price|name)|relevance)$")]
    pub sort: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (made for the same sort).
    pub cursor: Option<String>,
    /// Also return `facets`: counts over every product the filters keep (not only this
    /// page). Default false.
    pub facets: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductPageView {
    pub products: Vec<ProductView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Only when `facets=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<FacetsView>,
}

/// Counts over the whole filtered result (every page), filters (and `q`) applied.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FacetsView {
    /// Products the filters keep.
    pub total: i64,
    /// Products per category (a product counts in its own category only, not in the ones
    /// above it; `category_id` null: without a category), the most first, ties by id.
    pub categories: Vec<CategoryCountView>,
    /// Per attribute key, the 20 most frequent values (ties by value), each with the number
    /// of products holding it.
    pub attributes: BTreeMap<String, Vec<AttributeCountView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CategoryCountView {
    pub category_id: Option<i64>,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttributeCountView {
    /// A string, a number or a boolean, as stored.
    pub value: AttributeValueView,
    pub count: i64,
}

/// An attribute's typed value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum AttributeValueView {
    Text(String),
    Number(f64),
    Boolean(bool),
}

impl From<ProductFacets> for FacetsView {
    fn from(f: ProductFacets) -> Self {
        FacetsView {
            total: f.total,
            categories: f
                .categories
                .into_iter()
                .map(|(c, count)| CategoryCountView {
                    category_id: c.map(CategoryId::get),
                    count,
                })
                .collect(),
            attributes: f
                .attributes
                .into_iter()
                .map(|(k, values)| {
                    let values = values
                        .into_iter()
                        .map(|(v, count)| AttributeCountView {
                            value: match v {
                                AttributeValue::Text(t) => AttributeValueView::Text(t),
                                AttributeValue::Number(n) => AttributeValueView::Number(n),
                                AttributeValue::Boolean(b) => AttributeValueView::Boolean(b),
                            },
                            count,
                        })
                        .collect();
                    (k.as_str().to_owned(), values)
                })
                .collect(),
        }
    }
}

/// The names of [`ListParams`]' fields: a pair of the query by another name that is not an
/// `attr.<key>` filter is refused (a misspelt filter would otherwise widen the listing).
const LIST_PARAMS: &[&str] = &[
    "category",
    "q",
    "min_price",
    "max_price",
    "currency",
    "active",
    "sort",
    "limit",
    "cursor",
    "facets",
];

fn parse_query(p: ListParams, pairs: &[(String, String)]) -> Result<ProductQuery, DomainError> {
    let sort = p.sort.as_deref().map(ProductSort::parse).transpose()?;
    let mut q = ProductQuery {
        category: p
            .category
            .map(|c| field_id(c, "category", CategoryId::parse))
            .transpose()?,
        min_price: p.min_price,
        max_price: p.max_price,
        currency: p
            .currency
            .as_deref()
            .map(|c| {
                Currency::parse(c).map_err(|_| {
                    DomainError::invalid("currency", "must be three upper-case letters")
                })
            })
            .transpose()?,
        active: p.active,
        sort: sort.unwrap_or_default(),
        limit: p
            .limit
            .map(|n| {
                (1..=PAGE_MAX).contains(&n).then_some(n).ok_or_else(|| {
                    DomainError::invalid("limit", format!("must be 1 to {PAGE_MAX}"))
                })
            })
            .transpose()?
            .unwrap_or(PAGE_DEFAULT),
        ..ProductQuery::default()
    };
    q.search = p.q.as_deref().map(SearchText::parse).transpose()?.flatten();
    if sort.is_none() && q.search.is_some() {
        q.sort = ProductSort::Relevance;
    }
    q.facets = p.facets.unwrap_or(false);
    let mut keys = std::collections::HashSet::new();
    for (name, value) in pairs {
        let Some(key) = name.strip_prefix("attr.") else {
            if LIST_PARAMS.contains(&name.as_str()) {
                continue;
            }
            return Err(DomainError::invalid(
                "query",
                format!("unknown parameter {name:?}"),
            ));
        };
        if q.attributes.len() == ATTRIBUTE_FILTERS_MAX {
            return Err(DomainError::invalid(
                "attr",
                format!("at most {ATTRIBUTE_FILTERS_MAX} attr.<key> filters"),
            ));
        }
        let filter = AttributeFilter::parse(key, value)?;
        if !keys.insert(filter.key.clone()) {
            return Err(DomainError::invalid(
                "attr",
                format!("{key:?} is given twice"),
            ));
        }
        q.attributes.push(filter);
    }
    if let (Some(min), Some(max)) = (q.min_price, q.max_price)
        && min > max
    {
        return Err(DomainError::invalid("min_price", "is above max_price"));
    }
    q.after = p.cursor.map(|c| Cursor::decode(&c, q.sort)).transpose()?;
    Ok(q)
}

/// List and search products (never deleted ones): full text, filters, sort, cursor
/// pagination, facets.
///
/// Attribute filters: `attr.<key>=<value>`, the attribute equals the value (a text exactly; a
/// number or a boolean when the value reads as one). Repeatable with different keys; all must
/// hold.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog",
    params(ListParams),
    responses(
        (status = 200, description = "A page of products", body = ProductPageView),
        (status = 422, description = "`invalid_argument` naming the parameter", body = ErrorBody)))]
pub(crate) async fn list_products(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<ProductPageView>, ServiceError> {
    let query = parse_query(params, &pairs)?;
    let page = state.services.catalog.products(query).await?;
    Ok(Json(ProductPageView {
        products: page.products.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        facets: page.facets.map(Into::into),
    }))
}

// Categories.

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CategoryView {
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Category> for CategoryView {
    fn from(c: Category) -> Self {
        CategoryView {
            id: c.id.get(),
            name: c.name,
            parent_id: c.parent_id.map(CategoryId::get),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CategoryBody {
    /// 1 to 100 characters, trimmed; no control characters.
    #[schema(
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// The parent category, or null for a root (the default).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub parent_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CategoryList {
    pub categories: Vec<CategoryView>,
}

/// A category with the categories below it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CategoryTreeNode {
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    #[schema(no_recursion)]
    pub children: Vec<CategoryTreeNode>,
}

impl From<CategoryNode> for CategoryTreeNode {
    fn from(n: CategoryNode) -> Self {
        CategoryTreeNode {
            id: n.category.id.get(),
            name: n.category.name,
            parent_id: n.category.parent_id.map(CategoryId::get),
            children: n.children.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CategoryTree {
    /// The root categories, each with its children, in id order.
    pub categories: Vec<CategoryTreeNode>,
}

/// Create a category.
#[utoipa::path(post, path = "/api/v1/categories", tag = "catalog",
    request_body = CategoryBody,
    responses(
        (status = 201, description = "Stored", body = CategoryView),
        (status = 422, description = "`invalid_argument` naming the field (a `parent_id` that does not exist too)", body = ErrorBody)))]
pub(crate) async fn create_category(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CategoryBody>,
) -> Result<(StatusCode, Json<CategoryView>), ServiceError> {
    let new = body.try_into()?;
    let category = state.services.catalog.create_category(new).await?;
    Ok((StatusCode::CREATED, Json(category.into())))
}

/// Every category, flat, in id order.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog",
    responses((status = 200, description = "Every category", body = CategoryList)))]
pub(crate) async fn list_categories(
    State(state): State<AppState>,
) -> Result<Json<CategoryList>, ServiceError> {
    let categories = state.services.catalog.categories().await?;
    Ok(Json(CategoryList {
        categories: categories.into_iter().map(Into::into).collect(),
    }))
}

/// Every category as a tree: roots with nested `children`.
#[utoipa::path(get, path = "/api/v1/categories/tree", tag = "catalog",
    responses((status = 200, description = "The category tree", body = CategoryTree)))]
pub(crate) async fn category_tree(
    State(state): State<AppState>,
) -> Result<Json<CategoryTree>, ServiceError> {
    let roots = state.services.catalog.category_tree().await?;
    Ok(Json(CategoryTree {
        categories: roots.into_iter().map(Into::into).collect(),
    }))
}

/// A category.
#[utoipa::path(get, path = "/api/v1/categories/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Category id")),
    responses(
        (status = 200, description = "The category", body = CategoryView),
        (status = 404, description = "No such category", body = ErrorBody)))]
pub(crate) async fn read_category(
    State(state): State<AppState>,
    PathId(id): PathId<CategoryId>,
) -> Result<Json<CategoryView>, ServiceError> {
    let category = state.services.catalog.category(id).await?;
    Ok(Json(category.into()))
}

/// Rename or move a category.
#[utoipa::path(put, path = "/api/v1/categories/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Category id")),
    request_body = CategoryBody,
    responses(
        (status = 200, description = "Stored", body = CategoryView),
        (status = 404, description = "No such category", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field; `parent_id` also when it is the category itself or below it", body = ErrorBody)))]
pub(crate) async fn update_category(
    State(state): State<AppState>,
    PathId(id): PathId<CategoryId>,
    ApiJson(body): ApiJson<CategoryBody>,
) -> Result<Json<CategoryView>, ServiceError> {
    let new = body.try_into()?;
    let category = state.services.catalog.update_category(id, new).await?;
    Ok(Json(category.into()))
}

/// Delete a category that no product and no category refers to.
#[utoipa::path(delete, path = "/api/v1/categories/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Category id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such category", body = ErrorBody),
        (status = 409, description = "`category_in_use`: products or child categories refer to it; nothing changed", body = ErrorBody)))]
pub(crate) async fn delete_category(
    State(state): State<AppState>,
    PathId(id): PathId<CategoryId>,
) -> Result<StatusCode, ServiceError> {
    state.services.catalog.delete_category(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// Warehouses.

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WarehouseView {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Warehouse> for WarehouseView {
    fn from(w: Warehouse) -> Self {
        WarehouseView {
            id: w.id.get(),
            code: w.code,
            name: w.name,
            active: w.active,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct WarehouseBody {
    /// 1 to 32 of A-Z 0-9 - _, case-insensitive (stored upper-cased); unique.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub code: String,
    /// 1 to 200 characters, trimmed; no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// Default true.
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WarehouseList {
    pub warehouses: Vec<WarehouseView>,
}

/// Create a warehouse.
#[utoipa::path(post, path = "/api/v1/warehouses", tag = "catalog",
    request_body = WarehouseBody,
    responses(
        (status = 201, description = "Stored", body = WarehouseView),
        (status = 409, description = "`warehouse_code_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn create_warehouse(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<WarehouseBody>,
) -> Result<(StatusCode, Json<WarehouseView>), ServiceError> {
    let new = body.try_into()?;
    let warehouse = state.services.catalog.create_warehouse(new).await?;
    Ok((StatusCode::CREATED, Json(warehouse.into())))
}

/// Every warehouse, in id order.
#[utoipa::path(get, path = "/api/v1/warehouses", tag = "catalog",
    responses((status = 200, description = "Every warehouse", body = WarehouseList)))]
pub(crate) async fn list_warehouses(
    State(state): State<AppState>,
) -> Result<Json<WarehouseList>, ServiceError> {
    let warehouses = state.services.catalog.warehouses().await?;
    Ok(Json(WarehouseList {
        warehouses: warehouses.into_iter().map(Into::into).collect(),
    }))
}

/// A warehouse.
#[utoipa::path(get, path = "/api/v1/warehouses/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Warehouse id")),
    responses(
        (status = 200, description = "The warehouse", body = WarehouseView),
        (status = 404, description = "No such warehouse", body = ErrorBody)))]
pub(crate) async fn read_warehouse(
    State(state): State<AppState>,
    PathId(id): PathId<WarehouseId>,
) -> Result<Json<WarehouseView>, ServiceError> {
    let warehouse = state.services.catalog.warehouse(id).await?;
    Ok(Json(warehouse.into()))
}

/// Replace a warehouse's code, name and active flag.
#[utoipa::path(put, path = "/api/v1/warehouses/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Warehouse id")),
    request_body = WarehouseBody,
    responses(
        (status = 200, description = "Stored", body = WarehouseView),
        (status = 404, description = "No such warehouse", body = ErrorBody),
        (status = 409, description = "`warehouse_code_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_argument` naming the field", body = ErrorBody)))]
pub(crate) async fn update_warehouse(
    State(state): State<AppState>,
    PathId(id): PathId<WarehouseId>,
    ApiJson(body): ApiJson<WarehouseBody>,
) -> Result<Json<WarehouseView>, ServiceError> {
    let new = body.try_into()?;
    let warehouse = state.services.catalog.update_warehouse(id, new).await?;
    Ok(Json(warehouse.into()))
}

/// Delete a warehouse that holds no stock (one that does may be set inactive instead).
#[utoipa::path(delete, path = "/api/v1/warehouses/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "Warehouse id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such warehouse", body = ErrorBody),
        (status = 409, description = "`warehouse_in_use`: stock refers to it; nothing changed", body = ErrorBody)))]
pub(crate) async fn delete_warehouse(
    State(state): State<AppState>,
    PathId(id): PathId<WarehouseId>,
) -> Result<StatusCode, ServiceError> {
    state.services.catalog.delete_warehouse(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use utoipa::IntoParams;

    use super::*;

    #[test]
    fn the_names_a_listing_knows_are_the_fields_of_its_parameters() {
        let names: Vec<String> = ListParams::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, LIST_PARAMS);
    }
}

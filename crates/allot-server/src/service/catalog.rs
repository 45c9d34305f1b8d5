//! The catalog: products, the category tree and warehouses.
//!
//! Deleting a product marks it deleted (and inactive) rather than removing its row: orders
//! will refer to products, and an order must still say what was bought. A deleted product is
//! gone from every read and listing, and its SKU may be used again.

use std::collections::BTreeMap;
use std::sync::Arc;

use allot_domain::Clock;
use allot_domain::catalog::{
    AttributeKey, AttributeValue, CategoryId, Cursor, ProductId, ProductSort, SortKey, WarehouseId,
};
use allot_storage::{
    CatalogRefusal, Category, Facets, NewCategory, NewProduct, NewWarehouse, Product, ProductQuery,
    ScoredProduct, Store, Warehouse,
};

use crate::ServiceError;

/// Products one page holds when the client does not say, and at most.
pub const PAGE_DEFAULT: u32 = 20;
pub const PAGE_MAX: u32 = 100;
/// Values listed per attribute key in facets, the most frequent first.
pub const FACET_VALUES_MAX: usize = 20;

pub struct Catalog {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

/// One page of a listing, and the cursor of the next page when there may be one.
#[derive(Debug, Clone)]
pub struct ProductPage {
    pub products: Vec<Product>,
    pub next_cursor: Option<String>,
    pub facets: Option<ProductFacets>,
}

/// Counts over the whole filtered result of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductFacets {
    /// Products the filters keep.
    pub total: i64,
    /// Products per category (their own, not its ancestors; `None`: without a category), the
    /// most first, ties by id (no category last).
    pub categories: Vec<(Option<CategoryId>, i64)>,
    /// Per attribute key (in key order), the [`FACET_VALUES_MAX`] most frequent values with
    /// their counts, ties by value.
    pub attributes: Vec<(AttributeKey, Vec<(AttributeValue, i64)>)>,
}

/// How values of one key tie-break in facets: booleans, then numbers, then texts, each in
/// its natural order.
fn value_order(a: &AttributeValue, b: &AttributeValue) -> std::cmp::Ordering {
    use AttributeValue::{Boolean, Number, Text};
    match (a, b) {
        (Boolean(x), Boolean(y)) => x.cmp(y),
        (Number(x), Number(y)) => x.total_cmp(y),
        (Text(x), Text(y)) => x.cmp(y),
        (Boolean(_), _) | (Number(_), Text(_)) => std::cmp::Ordering::Less,
        _ => std::cmp::Ordering::Greater,
    }
}

impl From<Facets> for ProductFacets {
    fn from(f: Facets) -> Self {
        let total = f.categories.iter().map(|(_, n)| n).sum();
        let mut categories = f.categories;
        categories.sort_by(|(a, n), (b, m)| {
            m.cmp(n)
                .then_with(|| a.is_none().cmp(&b.is_none()))
                .then_with(|| a.map(CategoryId::get).cmp(&b.map(CategoryId::get)))
        });
        let mut by_key: BTreeMap<AttributeKey, Vec<(AttributeValue, i64)>> = BTreeMap::new();
        for (k, v, n) in f.attributes {
            by_key.entry(k).or_default().push((v, n));
        }
        let attributes = by_key
            .into_iter()
            .map(|(k, mut values)| {
                values.sort_by(|(a, n), (b, m)| m.cmp(n).then_with(|| value_order(a, b)));
                values.truncate(FACET_VALUES_MAX);
                (k, values)
            })
            .collect();
        ProductFacets {
            total,
            categories,
            attributes,
        }
    }
}

/// A category with the categories below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryNode {
    pub category: Category,
    pub children: Vec<CategoryNode>,
}

fn refused(r: CatalogRefusal, what: &'static str) -> ServiceError {
    match r {
        CatalogRefusal::NotFound => ServiceError::NotFound { what },
        CatalogRefusal::SkuTaken => ServiceError::SkuTaken,
        CatalogRefusal::CategoryNotFound => ServiceError::InvalidArgument {
            field: "category_id",
            message: "category_id: no such category".to_owned(),
        },
        CatalogRefusal::ParentNotFound => ServiceError::InvalidArgument {
            field: "parent_id",
            message: "parent_id: no such category".to_owned(),
        },
        CatalogRefusal::CategoryCycle => ServiceError::InvalidArgument {
            field: "parent_id",
            message: "parent_id: is the category itself or a category below it".to_owned(),
        },
        CatalogRefusal::CategoryInUse => ServiceError::CategoryInUse,
        CatalogRefusal::WarehouseCodeTaken => ServiceError::WarehouseCodeTaken,
        CatalogRefusal::WarehouseInUse => ServiceError::WarehouseInUse,
    }
}

/// The key a product is found by in a listing sorted by `sort` (for relevance, its score's
/// bits).
fn sort_key(hit: &ScoredProduct, sort: ProductSort) -> SortKey {
    let p = &hit.product;
    match sort {
        ProductSort::Relevance => SortKey::Int(hit.score.to_bits() as i64),
        ProductSort::CreatedAsc | ProductSort::CreatedDesc => {
            SortKey::Int(p.created_at.as_millis())
        }
        ProductSort::PriceAsc | ProductSort::PriceDesc => SortKey::Int(p.price.amount_minor()),
        ProductSort::NameAsc | ProductSort::NameDesc => SortKey::Text(p.name.clone()),
    }
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Catalog { store, clock }
    }

    pub async fn create_product(&self, new: NewProduct) -> Result<Product, ServiceError> {
        let product = self
            .store
            .create_product(new, self.clock.now())
            .await?
            .map_err(|r| refused(r, "product"))?;
        tracing::debug!(op = "catalog.create_product", id = product.id.get());
        Ok(product)
    }

    pub async fn product(&self, id: ProductId) -> Result<Product, ServiceError> {
        self.store
            .product(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "product" })
    }

    /// Replaces every field of the product.
    pub async fn update_product(
        &self,
        id: ProductId,
        new: NewProduct,
    ) -> Result<Product, ServiceError> {
        self.store
            .update_product(id, new, self.clock.now())
            .await?
            .map_err(|r| refused(r, "product"))
    }

    pub async fn delete_product(&self, id: ProductId) -> Result<(), ServiceError> {
        self.store
            .delete_product(id, self.clock.now())
            .await?
            .map_err(|r| refused(r, "product"))
    }

    /// A page of products. `query.limit` is the page size; one more row is read to tell
    /// whether another page follows.
    pub async fn products(&self, mut query: ProductQuery) -> Result<ProductPage, ServiceError> {
        let limit = query.limit.clamp(1, PAGE_MAX);
        query.limit = limit + 1;
        let sort = query.sort;
        let listing = self.store.products(query).await?;
        let mut products = listing.products;
        let more = products.len() > limit as usize;
        products.truncate(limit as usize);
        let next_cursor = match products.last() {
            Some(last) if more => Some(
                Cursor {
                    sort,
                    key: sort_key(last, sort),
                    id: last.product.id,
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(ProductPage {
            products: products.into_iter().map(|h| h.product).collect(),
            next_cursor,
            facets: listing.facets.map(Into::into),
        })
    }

    pub async fn create_category(&self, new: NewCategory) -> Result<Category, ServiceError> {
        self.store
            .create_category(new, self.clock.now())
            .await?
            .map_err(|r| refused(r, "category"))
    }

    pub async fn category(&self, id: CategoryId) -> Result<Category, ServiceError> {
        self.store
            .category(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "category" })
    }

    pub async fn categories(&self) -> Result<Vec<Category>, ServiceError> {
        Ok(self.store.categories().await?)
    }

    /// Every category, as a forest: roots in id order, each with its children in id order.
    pub async fn category_tree(&self) -> Result<Vec<CategoryNode>, ServiceError> {
        Ok(tree(self.store.categories().await?))
    }

    pub async fn update_category(
        &self,
        id: CategoryId,
        new: NewCategory,
    ) -> Result<Category, ServiceError> {
        self.store
            .update_category(id, new, self.clock.now())
            .await?
            .map_err(|r| refused(r, "category"))
    }

    /// Refused with `category_in_use` while products or child categories refer to it.
    pub async fn delete_category(&self, id: CategoryId) -> Result<(), ServiceError> {
        self.store
            .delete_category(id)
            .await?
            .map_err(|r| refused(r, "category"))
    }

    pub async fn create_warehouse(&self, new: NewWarehouse) -> Result<Warehouse, ServiceError> {
        self.store
            .create_warehouse(new, self.clock.now())
            .await?
            .map_err(|r| refused(r, "warehouse"))
    }

    pub async fn warehouse(&self, id: WarehouseId) -> Result<Warehouse, ServiceError> {
        self.store
            .warehouse(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "warehouse" })
    }

    pub async fn warehouses(&self) -> Result<Vec<Warehouse>, ServiceError> {
        Ok(self.store.warehouses().await?)
    }

    pub async fn update_warehouse(
        &self,
        id: WarehouseId,
        new: NewWarehouse,
    ) -> Result<Warehouse, ServiceError> {
        self.store
            .update_warehouse(id, new, self.clock.now())
            .await?
            .map_err(|r| refused(r, "warehouse"))
    }

    pub async fn delete_warehouse(&self, id: WarehouseId) -> Result<(), ServiceError> {
        self.store
            .delete_warehouse(id)
            .await?
            .map_err(|r| refused(r, "warehouse"))
    }
}

/// Builds the forest from a flat list in id order. A category whose parent is missing (it
/// cannot be, the foreign key holds) would be shown as a root rather than lost.
fn tree(categories: Vec<Category>) -> Vec<CategoryNode> {
    let ids: std::collections::HashSet<CategoryId> = categories.iter().map(|c| c.id).collect();
    let mut children: BTreeMap<Option<CategoryId>, Vec<Category>> = BTreeMap::new();
    for c in categories {
        let parent = c.parent_id.filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(c);
    }
    // Depth-first; each category is visited once (it is taken out of `children`), and a depth
    // bound keeps an absurdly deep tree from exhausting the stack.
    fn build(
        parent: Option<CategoryId>,
        children: &mut BTreeMap<Option<CategoryId>, Vec<Category>>,
        depth: usize,
    ) -> Vec<CategoryNode> {
        let Some(list) = children.remove(&parent) else {
            return Vec::new();
        };
        list.into_iter()
            .map(|category| {
                let below = if depth < 1_000 {
                    build(Some(category.id), children, depth + 1)
                } else {
                    Vec::new()
                };
                CategoryNode {
                    category,
                    children: below,
                }
            })
            .collect()
    }
    build(None, &mut children, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use allot_domain::UnixMillis;

    fn cat(id: i64, parent: Option<i64>) -> Category {
        Category {
            id: CategoryId::parse(id).unwrap(),
            name: format!("c{id}"),
            parent_id: parent.map(|p| CategoryId::parse(p).unwrap()),
            created_at: UnixMillis::from_millis(0),
            updated_at: UnixMillis::from_millis(0),
        }
    }

    fn shape(nodes: &[CategoryNode]) -> String {
        nodes
            .iter()
            .map(|n| {
                let inner = shape(&n.children);
                if inner.is_empty() {
                    n.category.id.to_string()
                } else {
                    format!("{}({inner})", n.category.id)
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn the_tree_nests_children_in_id_order() {
        let forest = tree(vec![
            cat(1, None),
            cat(2, Some(1)),
            cat(3, None),
            cat(4, Some(2)),
            cat(5, Some(1)),
        ]);
        assert_eq!(shape(&forest), "1(2(4),5),3");
        assert!(tree(Vec::new()).is_empty());
    }
}

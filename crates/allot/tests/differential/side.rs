//! One backend's side of a case: a fresh server, what the case created on it (its own ids and
//! codes, by position), and its answers made comparable ([`Names`]).

use allot_domain::UnixMillis;
use allot_domain::sale::ItemsPerSale;
use allot_server::service::sale::SaleSettings;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{self, TestApp};
use crate::names::Names;
use crate::ops::{Op, Pick};

/// Items in each hour's flash sale: few, so that a case sells some out.
const SALE_ITEMS: u32 = 4;
/// Items one customer may buy in one sale.
const SALE_USER_LIMIT: u32 = 2;
/// An id no server hands out in a case.
const UNKNOWN_ID: i64 = 999_999;
/// The serial of an unknown warehouse's code and name.
const UNKNOWN_SERIAL: usize = 999;
/// Well-formed codes that no case stores (a drawn code matching one is a 1 in 32^8 chance).
const UNKNOWN_DISCOUNT_CODE: &str = "ZZZZZZZZ";
const UNKNOWN_COUPON: &str = "NOSUCHCOUPON";
const UNKNOWN_CHECKOUT: &str = "ZZZZZZZZZZZZZZZZ";
/// Larger than anything a case lists, so one page holds all of it.
pub(crate) const PAGE: u32 = 1_000;
/// The order listing's largest page.
pub(crate) const ORDERS_PAGE: u32 = 500;

/// What a case created on one server, in creation order.
#[derive(Default)]
pub(crate) struct World {
    pub(crate) campaigns: Vec<i64>,
    pub(crate) discount_codes: Vec<String>,
    pub(crate) coupons: Vec<String>,
    coupon_serial: usize,
    pub(crate) products: Vec<i64>,
    product_serial: usize,
    warehouses: Vec<i64>,
    /// The serial each warehouse's code and name were made from, by position.
    warehouse_serials: Vec<usize>,
    warehouse_serial: usize,
    pub(crate) reservations: Vec<i64>,
    orders: Vec<i64>,
    pub(crate) sales: Vec<i64>,
    sale_items: Vec<i64>,
    checkouts: Vec<String>,
    design_codes: Vec<String>,
}

fn pick<T: Clone>(list: &[T], p: Pick) -> Option<T> {
    match p {
        Pick::Nth(n) if !list.is_empty() => Some(list[usize::from(n) % list.len()].clone()),
        _ => None,
    }
}

fn pick_id(list: &[i64], p: Pick) -> i64 {
    pick(list, p).unwrap_or(UNKNOWN_ID)
}

pub fn customer(n: u8) -> String {
    format!("cust{n}")
}

pub fn rfc3339(ms: i64) -> String {
    allot_server::time::rfc3339(UnixMillis::from_millis(ms))
}

/// An answer: HTTP status and body (0 and the error's text if the request itself failed).
pub type Answer = (u16, Value);

pub struct Side {
    pub app: TestApp,
    client: reqwest::Client,
    base: String,
    now_ms: i64,
    pub(crate) world: World,
    pub names: Names,
}

impl Side {
    /// A fresh server on `database` (PostgreSQL) or SQLite, its clock standing at `now_ms`.
    /// Jobs that act on their own timer are off, so that only the case's operations change
    /// state.
    pub async fn start(database: Option<String>, now_ms: i64) -> Side {
        let app = TestApp::spawn_on(database, UnixMillis::from_millis(now_ms), |c| {
            c.sales = SaleSettings {
                items: ItemsPerSale::parse(SALE_ITEMS).ok(),
                user_limit: SALE_USER_LIMIT,
            };
            c.coupon_purge_interval = None;
            c.reservation_expiry_interval = None;
        })
        .await;
        let base = app.url();
        Side {
            app,
            client: helpers::http(),
            base,
            now_ms,
            world: World::default(),
            names: Names::default(),
        }
    }

    /// Stops the server; the client goes first, or the graceful stop waits out its idle
    /// keep-alive connections.
    pub async fn stop(self) {
        drop(self.client);
        self.app.stop().await;
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        key: Option<String>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                (status, body)
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), None).await
    }

    /// A POST without a body, for the operations that take none.
    async fn post_bare(&self, path: &str) -> Answer {
        self.call(Method::POST, path, None, None).await
    }

    /// Applies `op`, notes what it created, and answers it with names for ids and codes.
    pub async fn apply(&mut self, op: &Op) -> Answer {
        let (answer, ctx) = self.apply_raw(op).await;
        let body = self.names.normalize(&answer.1, ctx);
        (answer.0, body)
    }

    async fn apply_raw(&mut self, op: &Op) -> (Answer, Option<&'static str>) {
        let w = &self.world;
        match op {
            Op::CreateCampaign {
                total,
                per_user_limit,
                open_for_min,
            } => {
                let body = json!({
                    "name": format!("Campaign {}", w.campaigns.len()),
                    "start_time": rfc3339(self.now_ms - 60_000),
                    "end_time": open_for_min.map(|m| rfc3339(self.now_ms + m * 60_000)),
                    "total_coupons": total,
                    "per_user_limit": per_user_limit,
                });
                let answer = self.post("/api/v1/campaigns", body).await;
                if answer.0 == 201 {
                    self.world
                        .campaigns
                        .push(answer.1["id"].as_i64().unwrap_or(0));
                }
                (answer, Some("campaign"))
            }
            Op::Issue {
                campaign,
                customer: who,
                key,
            } => {
                let id = pick_id(&w.campaigns, *campaign);
                let body = json!({
                    "user_id": who.map(customer),
                    "idempotency_key": key.map(|k| format!("issue{k}")),
                });
                let answer = self
                    .post(&format!("/api/v1/campaigns/{id}/coupons"), body)
                    .await;
                if let Some(code) = answer.1["code"].as_str() {
                    self.names.code("cc", code);
                }
                (answer, None)
            }
            Op::ReadCampaign { campaign } => {
                let id = pick_id(&w.campaigns, *campaign);
                (
                    self.get(&format!("/api/v1/campaigns/{id}")).await,
                    Some("campaign"),
                )
            }
            Op::GenerateCodes { count } => {
                let answer = self
                    .post(
                        "/api/v1/discount-codes/batches",
                        json!({"count": count, "length": 8}),
                    )
                    .await;
                for code in answer.1["codes"].as_array().into_iter().flatten() {
                    if let Some(code) = code.as_str() {
                        self.names.code("dc", code);
                        self.world.discount_codes.push(code.to_owned());
                    }
                }
                (answer, None)
            }
            Op::UseCode { code, lower_case } => {
                let mut code =
                    pick(&w.discount_codes, *code).unwrap_or(UNKNOWN_DISCOUNT_CODE.to_owned());
                if *lower_case {
                    code = code.to_lowercase();
                }
                (
                    self.post_bare(&format!("/api/v1/discount-codes/{code}/use"))
                        .await,
                    None,
                )
            }
            Op::UploadCoupons {
                kind,
                percent,
                max_uses,
                expires_in_min,
                count,
                clash,
            } => {
                let mut codes: Vec<String> = (0..*count)
                    .map(|i| format!("U{}", w.coupon_serial + usize::from(i)))
                    .collect();
                if *clash {
                    codes.push(w.coupons.first().unwrap_or(&codes[0]).clone());
                }
                let (discount_kind, amount) = if *percent {
                    ("PERCENTAGE", 20)
                } else {
                    ("FLAT", 300)
                };
                let entries: Vec<Value> = codes
                    .iter()
                    .map(|code| {
                        json!({
                            "code": code,
                            "type": kind.name(),
                            "discount_kind": discount_kind,
                            "discount_amount": amount,
                            "expires_at": rfc3339(self.now_ms + expires_in_min * 60_000),
                            "max_uses": max_uses,
                        })
                    })
                    .collect();
                self.world.coupon_serial += usize::from(*count);
                let answer = self
                    .post("/api/v1/coupons", json!({ "coupons": entries }))
                    .await;
                if answer.0 == 201 {
                    self.world.coupons.extend(codes);
                }
                (answer, None)
            }
            Op::RequestCoupon {
                customer: who,
                kind,
            } => (
                self.post(
                    "/api/v1/coupons/requests",
                    json!({"user_id": customer(*who), "type": kind.name()}),
                )
                .await,
                None,
            ),
            Op::ValidateCoupon {
                coupon,
                customer: who,
            }
            | Op::RedeemCoupon {
                coupon,
                customer: who,
            } => {
                let code = pick(&w.coupons, *coupon).unwrap_or(UNKNOWN_COUPON.to_owned());
                let verb = if matches!(op, Op::RedeemCoupon { .. }) {
                    "redeem"
                } else {
                    "validate"
                };
                (
                    self.post(
                        &format!("/api/v1/coupons/{code}/{verb}"),
                        json!({"user_id": customer(*who)}),
                    )
                    .await,
                    None,
                )
            }
            Op::CreateProduct { price_minor, clash } => {
                let serial = if *clash && !w.products.is_empty() {
                    0
                } else {
                    w.product_serial
                };
                let body = json!({
                    "sku": format!("SKU-{serial}"),
                    "name": format!("Product {}", w.product_serial),
                    "price": {"amount_minor": price_minor, "currency": "EUR"},
                });
                self.world.product_serial += 1;
                let answer = self.post("/api/v1/products", body).await;
                if answer.0 == 201 {
                    self.world
                        .products
                        .push(answer.1["id"].as_i64().unwrap_or(0));
                }
                (answer, Some("product"))
            }
            Op::CreateWarehouse => {
                let serial = w.warehouse_serial;
                self.world.warehouse_serial += 1;
                let answer = self
                    .post(
                        "/api/v1/warehouses",
                        json!({
                            "code": format!("W{serial}"),
                            "name": format!("Warehouse {serial}"),
                        }),
                    )
                    .await;
                if answer.0 == 201 {
                    self.world
                        .warehouses
                        .push(answer.1["id"].as_i64().unwrap_or(0));
                    self.world.warehouse_serials.push(serial);
                }
                (answer, Some("warehouse"))
            }
            Op::SetWarehouseActive { warehouse, active } => {
                let id = pick_id(&w.warehouses, *warehouse);
                let serial = pick(&w.warehouse_serials, *warehouse).unwrap_or(UNKNOWN_SERIAL);
                let body = json!({
                    "code": format!("W{serial}"),
                    "name": format!("Warehouse {serial}"),
                    "active": active,
                });
                (
                    self.call(
                        Method::PUT,
                        &format!("/api/v1/warehouses/{id}"),
                        Some(body),
                        None,
                    )
                    .await,
                    Some("warehouse"),
                )
            }
            Op::DeleteProduct { product } => {
                let id = pick_id(&w.products, *product);
                (
                    self.call(
                        Method::DELETE,
                        &format!("/api/v1/products/{id}"),
                        None,
                        None,
                    )
                    .await,
                    None,
                )
            }
            Op::Adjust {
                product,
                warehouse,
                set,
                quantity,
            } => {
                let body = json!({
                    "product_id": pick_id(&w.products, *product),
                    "warehouse_id": pick_id(&w.warehouses, *warehouse),
                    "mode": if *set { "set" } else { "add" },
                    "quantity": quantity,
                    "reason": "differential",
                });
                (self.post("/api/v1/inventory/adjust", body).await, None)
            }
            Op::Reorder {
                product,
                warehouse,
                threshold,
                quantity,
            } => {
                let id = pick_id(&w.products, *product);
                let body = json!({
                    "warehouse_id": pick_id(&w.warehouses, *warehouse),
                    "reorder_threshold": threshold,
                    "reorder_quantity": threshold.map(|_| quantity),
                });
                (
                    self.call(
                        Method::PUT,
                        &format!("/api/v1/inventory/{id}/reorder"),
                        Some(body),
                        None,
                    )
                    .await,
                    None,
                )
            }
            Op::Reserve {
                product,
                warehouse,
                quantity,
                holder,
            } => {
                let body = json!({
                    "product_id": pick_id(&w.products, *product),
                    "warehouse_id": warehouse.map(|p| pick_id(&w.warehouses, p)),
                    "quantity": quantity,
                    "holder": format!("holder{holder}"),
                });
                let answer = self.post("/api/v1/inventory/reserve", body).await;
                if answer.0 == 201 {
                    self.world
                        .reservations
                        .push(answer.1["id"].as_i64().unwrap_or(0));
                }
                (answer, Some("reservation"))
            }
            Op::Confirm { reservation } | Op::Release { reservation } => {
                let verb = if matches!(op, Op::Confirm { .. }) {
                    "confirm"
                } else {
                    "release"
                };
                let id = pick_id(&w.reservations, *reservation);
                (
                    self.post(
                        &format!("/api/v1/inventory/{verb}"),
                        json!({"reservation_id": id}),
                    )
                    .await,
                    Some("reservation"),
                )
            }
            Op::ReadInventory { product } => {
                let id = pick_id(&w.products, *product);
                (self.get(&format!("/api/v1/inventory/{id}")).await, None)
            }
            Op::PlaceOrder {
                customer: who,
                lines,
                coupon,
                discount_code,
                key,
            } => {
                let lines: Vec<Value> = lines
                    .iter()
                    .map(|(p, q)| json!({"product_id": pick_id(&w.products, *p), "quantity": q}))
                    .collect();
                let body = json!({
                    "customer": customer(*who),
                    "shipping_address": {
                        "name": "Ada Lovelace", "line1": "1 Loop Road", "city": "Berlin",
                        "postal_code": "10115", "country": "DE",
                    },
                    "lines": lines,
                    "coupon": coupon.map(|c| {
                        pick(&w.coupons, c).unwrap_or(UNKNOWN_COUPON.to_owned())
                    }),
                    "discount_code": discount_code.map(|c| {
                        pick(&w.discount_codes, c).unwrap_or(UNKNOWN_DISCOUNT_CODE.to_owned())
                    }),
                });
                let answer = self
                    .call(
                        Method::POST,
                        "/api/v1/orders",
                        Some(body),
                        key.map(|k| format!("order{k}")),
                    )
                    .await;
                if answer.0 == 201 {
                    self.world.orders.push(answer.1["id"].as_i64().unwrap_or(0));
                }
                (answer, Some("order"))
            }
            Op::SetStatus {
                order,
                to,
                warehouse,
            } => {
                let id = pick_id(&w.orders, *order);
                let body = json!({
                    "status": to,
                    "warehouse_id": warehouse.map(|p| pick_id(&w.warehouses, p)),
                });
                (
                    self.call(
                        Method::PUT,
                        &format!("/api/v1/orders/{id}/status"),
                        Some(body),
                        None,
                    )
                    .await,
                    Some("order"),
                )
            }
            Op::ReadOrder { order } => {
                let id = pick_id(&w.orders, *order);
                (
                    self.get(&format!("/api/v1/orders/{id}")).await,
                    Some("order"),
                )
            }
            Op::ListOrders {
                customer: who,
                status,
            } => {
                let mut query = format!("limit={ORDERS_PAGE}");
                if let Some(who) = who {
                    query.push_str(&format!("&customer={}", customer(*who)));
                }
                if let Some(status) = status {
                    query.push_str(&format!("&status={status}"));
                }
                (self.get(&format!("/api/v1/orders?{query}")).await, None)
            }
            Op::ListRedemptions {
                customer: who,
                kind,
            } => {
                let mut query = format!("limit={PAGE}");
                if let Some(who) = who {
                    query.push_str(&format!("&user_id={}", customer(*who)));
                }
                if let Some(kind) = kind {
                    query.push_str(&format!("&type={}", kind.name().unwrap_or("NONE")));
                }
                (
                    self.get(&format!("/api/v1/redemptions?{query}")).await,
                    None,
                )
            }
            Op::ListStock {
                warehouse,
                low_only,
            } => {
                let mut query = format!("limit=500&low_stock={low_only}");
                if let Some(p) = warehouse {
                    query.push_str(&format!("&warehouse_id={}", pick_id(&w.warehouses, *p)));
                }
                (self.get(&format!("/api/v1/inventory?{query}")).await, None)
            }
            Op::ReadSale => self.read_sale().await,
            Op::Checkout {
                customer: who,
                item,
            } => {
                let item = pick_id(&w.sale_items, *item);
                // Allot's own checkout, under the sale last read (which may be over).
                let sale = w.sales.last().copied().unwrap_or(1);
                let answer = self
                    .post_bare(&format!(
                        "/api/v1/sales/{sale}/checkout?user_id={}&id={item}",
                        customer(*who)
                    ))
                    .await;
                if let Some(code) = answer.1["code"].as_str() {
                    self.names.code("chk", code);
                    self.world.checkouts.push(code.to_owned());
                }
                (answer, None)
            }
            Op::Purchase { checkout } => {
                let code = pick(&w.checkouts, *checkout).unwrap_or(UNKNOWN_CHECKOUT.to_owned());
                let sale = w.sales.last().copied().unwrap_or(1);
                (
                    self.post_bare(&format!("/api/v1/sales/{sale}/purchase?code={code}"))
                        .await,
                    None,
                )
            }
            Op::DesignCheckout {
                customer: who,
                item,
            } => {
                let item = pick_id(&w.sale_items, *item);
                let answer = self
                    .post_bare(&format!("/checkout?user_id={}&id={item}", customer(*who)))
                    .await;
                // An error's body has a `code` too: the design's machine-readable reason.
                if answer.0 == 200
                    && let Some(code) = answer.1["code"].as_str()
                {
                    self.names.code("basket", code);
                    if !self.world.design_codes.iter().any(|c| c == code) {
                        self.world.design_codes.push(code.to_owned());
                    }
                }
                (answer, None)
            }
            Op::DesignPurchase { code } => {
                let code = pick(&w.design_codes, *code).unwrap_or(UNKNOWN_CHECKOUT.to_owned());
                (
                    self.post_bare(&format!("/purchase?code={code}")).await,
                    None,
                )
            }
            Op::AdvanceClock { minutes } => {
                self.now_ms += minutes * 60_000;
                if let Some(clock) = &self.app.clock {
                    clock.set(UnixMillis::from_millis(self.now_ms));
                }
                ((200, json!({"now": rfc3339(self.now_ms)})), None)
            }
            Op::ReadEvents => (
                self.get(&format!("/api/v1/events?limit={PAGE}")).await,
                Some("event"),
            ),
            Op::ReadAudit => (
                self.get(&format!("/api/v1/audit?limit={PAGE}")).await,
                Some("event"),
            ),
        }
    }

    /// The current sale and its items (noted for checkouts).
    async fn read_sale(&mut self) -> (Answer, Option<&'static str>) {
        let (status, sale) = self.get("/api/v1/sales/current").await;
        let Some(id) = sale["id"].as_i64() else {
            return ((status, sale), Some("sale"));
        };
        if !self.world.sales.contains(&id) {
            self.world.sales.push(id);
        }
        let (_, items) = self
            .get(&format!("/api/v1/sales/{id}/items?limit={PAGE}"))
            .await;
        for item in items["items"].as_array().into_iter().flatten() {
            if let Some(item) = item["id"].as_i64()
                && !self.world.sale_items.contains(&item)
            {
                self.world.sale_items.push(item);
            }
        }
        (
            (status, json!({"sale": sale, "items": items["items"]})),
            Some("sale"),
        )
    }
}

//! A case's final state: everything it created, read back from one server.

use serde_json::{Value, json};

use crate::side::{Answer, ORDERS_PAGE, PAGE, Side, customer};

impl Side {
    /// Everything the case created, read back, with names for ids and codes.
    pub async fn final_state(&mut self) -> Value {
        let mut reads: Vec<(String, Answer, Option<&'static str>)> = Vec::new();
        let w = &self.world;
        for id in &w.campaigns {
            reads.push((
                format!("campaign {id}"),
                self.get(&format!("/api/v1/campaigns/{id}")).await,
                Some("campaign"),
            ));
            reads.push((
                format!("campaign {id} coupons"),
                self.get(&format!("/api/v1/campaigns/{id}/coupons?limit=10000"))
                    .await,
                None,
            ));
        }
        for code in &w.coupons {
            reads.push((
                format!("coupon {code}"),
                self.get(&format!("/api/v1/coupons/{code}")).await,
                None,
            ));
        }
        reads.push((
            "coupon stats".to_owned(),
            self.get("/api/v1/coupons/stats").await,
            None,
        ));
        reads.push((
            "redemptions".to_owned(),
            self.get(&format!("/api/v1/redemptions?limit={PAGE}")).await,
            None,
        ));
        for code in &w.discount_codes {
            reads.push((
                format!("discount code {code}"),
                self.get(&format!("/api/v1/discount-codes/{code}")).await,
                None,
            ));
        }
        reads.push((
            "stock levels".to_owned(),
            self.get("/api/v1/inventory?limit=500").await,
            None,
        ));
        for id in &w.products {
            reads.push((
                format!("inventory {id}"),
                self.get(&format!("/api/v1/inventory/{id}")).await,
                None,
            ));
            reads.push((
                format!("ledger of {id}"),
                self.get(&format!("/api/v1/inventory/{id}/movements?limit=500"))
                    .await,
                None,
            ));
            reads.push((
                format!("reservations of {id}"),
                self.get(&format!("/api/v1/inventory/{id}/reservations?limit=500"))
                    .await,
                Some("reservation"),
            ));
        }
        reads.push((
            "stock alerts".to_owned(),
            self.get("/api/v1/inventory/alerts?limit=500").await,
            None,
        ));
        for id in &w.reservations {
            reads.push((
                format!("reservation {id}"),
                self.get(&format!("/api/v1/inventory/reservations/{id}"))
                    .await,
                Some("reservation"),
            ));
        }
        reads.push((
            "orders".to_owned(),
            self.get(&format!("/api/v1/orders?limit={ORDERS_PAGE}"))
                .await,
            None,
        ));
        reads.push((
            "orders, newest first".to_owned(),
            self.get(&format!("/api/v1/orders?sort=-created&limit={ORDERS_PAGE}"))
                .await,
            None,
        ));
        for id in &w.sales {
            reads.push((
                format!("sale {id}"),
                self.get(&format!("/api/v1/sales/{id}")).await,
                Some("sale"),
            ));
            for who in 0..4 {
                reads.push((
                    format!("sale {id} purchases of {}", customer(who)),
                    self.get(&format!(
                        "/api/v1/sales/{id}/purchases?user_id={}",
                        customer(who)
                    ))
                    .await,
                    None,
                ));
            }
        }
        reads.push((
            "events".to_owned(),
            self.get(&format!("/api/v1/events?limit={PAGE}")).await,
            Some("event"),
        ));
        reads.push((
            "audit".to_owned(),
            self.get(&format!("/api/v1/audit?limit={PAGE}")).await,
            Some("event"),
        ));
        // Named in read order on both sides; the labels hold real ids and codes, so they are
        // numbered instead.
        let state: Vec<Value> = reads
            .into_iter()
            .enumerate()
            .map(|(i, (label, (status, body), ctx))| {
                json!({
                    "read": i,
                    "what": label.split(' ').next().unwrap_or_default(),
                    "status": status,
                    "body": self.names.normalize(&body, ctx),
                })
            })
            .collect();
        Value::Array(state)
    }
}

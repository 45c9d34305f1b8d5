//! The README's worked promotion examples, read from README.md and evaluated by the engine: the
//! figures a reader sees there are the engine's.
//!
//! The README tags its blocks: ```` ```json promotion ```` (a `POST /api/v1/promotions` body; ids
//! 1, 2, ... in the order of the example), ```` ```json cart ```` (a preview's body) and
//! ```` ```json evaluation ```` (the answer, which closes the example). Every field the README
//! shows must be in the answer, equal; a refusal's `message` (the server's words) may be left out.

use std::collections::BTreeMap;

use allot_domain::UnixMillis;
use allot_domain::promotion::{
    Candidate, Cart, CartLine, Customer, Evaluation, Promotion, PromotionId, PromotionSpec, Usage,
    evaluate,
};
use serde_json::{Value, json};

const README: &str = include_str!("../../../README.md");

struct Example {
    /// Where the answer's block starts in README.md (1-based), to name a failing example.
    line: usize,
    promotions: Vec<Value>,
    cart: Value,
    evaluation: Value,
}

fn examples() -> Vec<Example> {
    let mut examples = Vec::new();
    let mut promotions = Vec::new();
    let mut cart = None;
    let mut lines = README.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(tag) = line.strip_prefix("```json ") else {
            continue;
        };
        let tag = tag.trim();
        if !["promotion", "cart", "evaluation"].contains(&tag) {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let value: Value = serde_json::from_str(&body.join("\n"))
            .unwrap_or_else(|e| panic!("README.md line {}: not JSON: {e}", n + 1));
        match tag {
            "promotion" => promotions.push(value),
            "cart" => cart = Some(value),
            _ => examples.push(Example {
                line: n + 1,
                promotions: std::mem::take(&mut promotions),
                cart: cart
                    .take()
                    .unwrap_or_else(|| panic!("README.md line {}: no cart before it", n + 1)),
                evaluation: value,
            }),
        }
    }
    examples
}

fn cart_of(v: &Value) -> Cart {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let lines = v["lines"]
        .as_array()
        .expect("a cart has lines")
        .iter()
        .map(|l| CartLine {
            product: int(&l["product_id"]),
            quantity: int(&l["quantity"]),
            unit_price_minor: int(&l["unit_price_minor"]),
            categories: l["category_ids"]
                .as_array()
                .map(|a| a.iter().map(int).collect())
                .unwrap_or_default(),
            attributes: l["attributes"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), text(v).unwrap_or_else(|| v.to_string())))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default(),
        })
        .collect();
    let customer = &v["customer"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    Cart::parse(Cart {
        currency: text(&v["currency"]).expect("the examples name their currency"),
        lines,
        shipping_minor: int(&v["shipping_minor"]),
        customer: Customer {
            id: text(&customer["id"]),
            role: text(&customer["role"]),
            tags: strings(&customer["tags"]),
            orders_before: customer["orders_before"].as_u64().unwrap_or(0),
        },
        codes: strings(&v["codes"]),
    })
    .expect("a valid cart")
}

/// The answer as `POST /api/v1/promotions/evaluate` gives it (without refusal messages).
fn answer(cart: &Cart, e: &Evaluation, names: &[String]) -> Value {
    let lines: Vec<Value> = e
        .lines
        .iter()
        .enumerate()
        .map(|(index, l)| {
            let discounts: Vec<Value> = e
                .applied
                .iter()
                .flat_map(|a| {
                    a.lines.iter().filter(|d| d.line == index).map(
                        |d| json!({"promotion_id": a.id.get(), "amount_minor": d.amount_minor}),
                    )
                })
                .collect();
            json!({
                "index": index,
                "product_id": cart.lines[index].product,
                "quantity": cart.lines[index].quantity,
                "line_total_minor": l.line_total_minor,
                "discount_minor": l.discount_minor,
                "total_minor": l.total_minor,
                "discounts": discounts,
            })
        })
        .collect();
    let applied: Vec<Value> = e
        .applied
        .iter()
        .map(|a| {
            json!({
                "promotion_id": a.id.get(),
                "name": names[(a.id.get() - 1) as usize],
                "code": a.code,
                "amount_minor": a.amount_minor,
                "shipping_minor": a.shipping_minor,
                "capped_by_budget": a.capped_by_budget,
                "lines": a.lines.iter()
                    .map(|d| json!({"index": d.line, "amount_minor": d.amount_minor}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let refused: Vec<Value> = e
        .refused
        .iter()
        .map(|r| {
            json!({
                "code": r.code,
                "promotion_id": r.id.map(PromotionId::get),
                "reason": r.reason.as_str(),
            })
        })
        .collect();
    json!({
        "currency": cart.currency,
        "subtotal_minor": e.subtotal_minor,
        "discount_minor": e.discount_minor,
        "shipping_minor": e.shipping_minor,
        "shipping_discount_minor": e.shipping_discount_minor,
        "total_minor": e.total_minor,
        "lines": lines,
        "applied": applied,
        "refused": refused,
    })
}

/// Every field of `shown` is in `actual`, equal (arrays of the same length, element by element).
/// A refusal's `message` is the server's wording, not the engine's: it may be shown or not.
fn check(shown: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (shown, actual) {
        (Value::Object(s), Value::Object(a)) => {
            for (key, value) in s {
                if key == "message" && path.contains("refused") {
                    continue;
                }
                let inner = a
                    .get(key)
                    .ok_or_else(|| format!("{path}.{key}: not in the answer"))?;
                check(value, inner, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(s), Value::Array(a)) => {
            if s.len() != a.len() {
                return Err(format!(
                    "{path}: {} shown, {} in the answer: {actual}",
                    s.len(),
                    a.len()
                ));
            }
            s.iter()
                .zip(a)
                .enumerate()
                .try_for_each(|(i, (s, a))| check(s, a, &format!("{path}[{i}]")))
        }
        _ if shown == actual => Ok(()),
        _ => Err(format!("{path}: shown {shown}, the engine gives {actual}")),
    }
}

#[test]
fn every_readme_example_is_what_the_engine_answers() {
    let examples = examples();
    // One per action and one of stacking: a README edit that loses a block fails here.
    assert!(
        examples.len() >= 7,
        "README.md holds {} promotion examples",
        examples.len()
    );
    for example in &examples {
        let promotions: Vec<Promotion> = example
            .promotions
            .iter()
            .map(|spec| {
                let spec: PromotionSpec = serde_json::from_value(spec.clone())
                    .unwrap_or_else(|e| panic!("README.md line {}: {e}", example.line));
                Promotion::parse(spec)
                    .unwrap_or_else(|e| panic!("README.md line {}: {e}", example.line))
            })
            .collect();
        let names: Vec<String> = promotions.iter().map(|p| p.spec().name.clone()).collect();
        let candidates: Vec<Candidate<'_>> = promotions
            .iter()
            .enumerate()
            .map(|(i, promotion)| Candidate {
                id: PromotionId::parse(i as i64 + 1).expect("a positive id"),
                promotion,
                code: None,
                usage: Usage::default(),
            })
            .collect();
        let cart = cart_of(&example.cart);
        let e = evaluate(&cart, &candidates, &[], UnixMillis::from_millis(0));
        let actual = answer(&cart, &e, &names);
        if let Err(difference) = check(&example.evaluation, &actual, "") {
            panic!(
                "README.md, the example answered at line {}: {difference}",
                example.line
            );
        }
    }
}

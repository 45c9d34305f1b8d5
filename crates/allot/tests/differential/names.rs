//! Answers made comparable across backends: what each server drew at random (codes) or numbered
//! on its own (ids, event sequence numbers) is replaced by a name given in order of first
//! appearance, so `dc#0` is the first discount code either server generated, `product#1` the
//! second product id either server answered. Two answers are then equal exactly when they are
//! equal up to a consistent renaming.

use std::collections::HashMap;

use serde_json::{Map, Value};

#[derive(Default)]
pub struct Names {
    codes: HashMap<String, String>,
    /// Longest first, so that a code inside a longer one is not renamed by halves.
    code_list: Vec<(String, String)>,
    ids: HashMap<(&'static str, i64), String>,
    counts: HashMap<&'static str, usize>,
}

impl Names {
    /// Names a code the server drew (a discount code, a campaign code, a checkout code).
    pub fn code(&mut self, kind: &'static str, real: &str) -> String {
        if let Some(name) = self.codes.get(real) {
            return name.clone();
        }
        let name = format!("{kind}#{}", self.next(kind));
        self.codes.insert(real.to_owned(), name.clone());
        self.code_list.push((real.to_owned(), name.clone()));
        self.code_list
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        name
    }

    fn id(&mut self, kind: &'static str, real: i64) -> String {
        if let Some(name) = self.ids.get(&(kind, real)) {
            return name.clone();
        }
        let name = format!("{kind}#{}", self.next(kind));
        self.ids.insert((kind, real), name.clone());
        name
    }

    fn next(&mut self, kind: &'static str) -> usize {
        let n = self.counts.entry(kind).or_default();
        *n += 1;
        *n - 1
    }

    /// `v` with codes and ids renamed; `ctx` is what an `id` field at its top level names.
    pub fn normalize(&mut self, v: &Value, ctx: Option<&'static str>) -> Value {
        match v {
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, val) in o {
                    let value = match (id_kind(k, ctx), val) {
                        (Some(kind), Value::Number(n)) if n.is_i64() => {
                            Value::String(self.id(kind, n.as_i64().unwrap_or_default()))
                        }
                        _ => self.normalize(val, child_ctx(k, ctx)),
                    };
                    out.insert(k.clone(), value);
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.normalize(i, ctx)).collect())
            }
            Value::String(s) => Value::String(self.text(s)),
            other => other.clone(),
        }
    }

    /// Text with the ids it names renamed: an error message or a reason (`product 4`,
    /// `order 2 cancelled`), an audit summary (`product_id=3`), and the codes drawn.
    fn text(&mut self, s: &str) -> String {
        let mut words: Vec<String> = s.split(' ').map(str::to_owned).collect();
        for i in 0..words.len() {
            let (kind, number) = match words[i].split_once('=') {
                Some((key, value)) => match id_kind(key, None) {
                    Some(kind) => (kind, value.to_owned()),
                    None => continue,
                },
                // An order's reservations are held as `order-<id>`.
                None if words[i].starts_with("order-") => {
                    ("order", words[i]["order-".len()..].to_owned())
                }
                // The word before, past a quote or `=` (`reason="order 2 cancelled"`).
                None if i > 0 => match words[i - 1].rsplit(['=', '"']).next().unwrap_or("") {
                    "product" => ("product", words[i].clone()),
                    "warehouse" => ("warehouse", words[i].clone()),
                    "reservation" => ("reservation", words[i].clone()),
                    "order" => ("order", words[i].clone()),
                    "campaign" => ("campaign", words[i].clone()),
                    _ => continue,
                },
                None => continue,
            };
            let digits = number.trim_end_matches(|c: char| !c.is_ascii_digit());
            if let Ok(real) = digits.parse::<i64>() {
                let renamed = format!("{}{}", self.id(kind, real), &number[digits.len()..]);
                words[i] = match words[i].split_once('=') {
                    Some((key, _)) => format!("{key}={renamed}"),
                    None => renamed,
                };
            }
        }
        self.rename_codes(&words.join(" "))
    }

    fn rename_codes(&self, s: &str) -> String {
        if let Some(name) = self.codes.get(s) {
            return name.clone();
        }
        let mut out = s.to_owned();
        for (real, name) in &self.code_list {
            if out.contains(real.as_str()) {
                out = out.replace(real.as_str(), name);
            }
        }
        out
    }
}

/// What an integer field holds, by its name (and, for `id`, by where it stands).
fn id_kind(key: &str, ctx: Option<&'static str>) -> Option<&'static str> {
    match key {
        "id" => ctx,
        "product_id" => Some("product"),
        "warehouse_id" => Some("warehouse"),
        "reservation_id" => Some("reservation"),
        "campaign_id" => Some("campaign"),
        "order_id" => Some("order"),
        "sale_id" => Some("sale"),
        "item_id" => Some("sale_item"),
        "upload_id" => Some("upload"),
        "batch_id" => Some("batch"),
        "seq" | "next_after" if ctx == Some("event") => Some("event"),
        "next_after" if ctx == Some("redemption") => Some("redemption"),
        _ => None,
    }
}

/// What an `id` names inside the field `key`.
fn child_ctx(key: &str, ctx: Option<&'static str>) -> Option<&'static str> {
    match key {
        "movements" => Some("movement"),
        "item" | "items" => Some("sale_item"),
        "alerts" => Some("alert"),
        "redemptions" => Some("redemption"),
        "events" | "entries" => Some("event"),
        "orders" => Some("order"),
        // Event payloads name their ids by key (`order_id`, ...); a bare `id` there is left as is.
        "payload" => None,
        _ => ctx,
    }
}

/// Up to `max` paths where `a` and `b` differ, each with both values, for a readable failure.
pub fn differences(a: &Value, b: &Value, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    walk(a, b, "$", &mut out, max);
    out
}

fn walk(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, max: usize) {
    if out.len() >= max || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let null = Value::Null;
                walk(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &format!("{path}.{k}"),
                    out,
                    max,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!(
                    "{path}: sqlite {} items | postgres {} items",
                    x.len(),
                    y.len()
                ));
            }
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                walk(p, q, &format!("{path}[{i}]"), out, max);
            }
        }
        _ => out.push(format!("{path}: sqlite {a} | postgres {b}")),
    }
}

//! Promotions: the list (each one's budget used, as a bar), a promotion's page (its spec in
//! words, its usage, its latest holds, the edit and bind-codes forms), the create form (the
//! spec as JSON, with examples to start from) and a preview of a cart against them all.
//!
//! Pages read the store (a promotion, a page of them, its holds); every change and the
//! preview are calls of the REST API sent by the page's script (promotions.js), so the same
//! rules, audit and errors (naming the spec's field) apply as for any client.

use allot_domain::promotion::{PromotionId, Trigger};
use allot_storage::{Hold, HoldStatus, PromotionQuery, StoredPromotion, Totals};
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::error_page;
use super::promotion_words as words;
use super::{Ctx, ui};
use crate::ServiceError;
use crate::state::AppState;

/// Promotions a page of the list shows; holds a promotion's page shows.
const PAGE_ROWS: u32 = 50;
const HOLD_ROWS: u32 = 20;
/// Lines the preview form offers.
const PREVIEW_LINES: usize = 5;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/promotions", get(list))
        .route("/console/promotions/new", get(new))
        .route("/console/promotions/preview", get(preview))
        .route("/console/promotions/{id}", get(detail))
}

/// The list's filters as the browser sends them, parsed below so that a bad one is named.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    active: Option<String>,
    trigger: Option<String>,
    after: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn invalid(field: &'static str, message: &str) -> ServiceError {
    ServiceError::InvalidArgument {
        field,
        message: format!("{field}: {message}"),
    }
}

impl ListQuery {
    fn parse(&self) -> Result<PromotionQuery, ServiceError> {
        let active = match nonempty(&self.active) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(invalid("active", "must be true or false")),
        };
        let trigger = match nonempty(&self.trigger) {
            None => None,
            Some("automatic") => Some(Trigger::Automatic),
            Some("code") => Some(Trigger::Code),
            Some(_) => return Err(invalid("trigger", "must be automatic or code")),
        };
        let after = match nonempty(&self.after) {
            None => 0,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| invalid("after", "must be a whole number, 0 or more"))?,
        };
        Ok(PromotionQuery {
            active,
            trigger,
            after,
            limit: PAGE_ROWS,
        })
    }

    /// The pager's base: these filters, without the cursor.
    fn base(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("active", &self.active), ("trigger", &self.trigger)] {
            if let Some(v) = nonempty(value) {
                q.append_pair(name, v);
            }
        }
        let q = q.finish();
        if q.is_empty() {
            "/console/promotions".to_owned()
        } else {
            format!("/console/promotions?{q}")
        }
    }
}

fn promotion_id(raw: &str) -> Result<PromotionId, ServiceError> {
    raw.parse::<i64>()
        .ok()
        .and_then(|n| PromotionId::parse(n).ok())
        .ok_or(ServiceError::NotFound { what: "promotion" })
}

fn active_badge(active: bool) -> Markup {
    if active {
        html! { span.badge.ok { "Active" } }
    } else {
        html! { span.badge { "Off" } }
    }
}

fn hold_badge(status: HoldStatus) -> Markup {
    let text = status.as_str().replace('_', " ");
    match status {
        HoldStatus::Held => html! { span.badge.warn { (text) } },
        HoldStatus::Redeemed => html! { span.badge.ok { (text) } },
        HoldStatus::RolledBack => html! { span.badge.bad { (text) } },
        HoldStatus::Released | HoldStatus::Expired => html! { span.badge { (text) } },
    }
}

/// Percent of `part` in `whole`, for the bar's widths (SVG attributes: the CSP allows no
/// inline style).
fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        (part.max(0) as f64 * 100.0 / whole as f64).min(100.0)
    }
}

/// Money used of a budget as a bar: redeemed, then held, of the budget; and in words.
fn budget_bar(totals: &Totals, budget: Option<i64>, currency: Option<&str>) -> Markup {
    let used = totals.redeemed_minor + totals.held_minor;
    match budget {
        None => html! {
            span.sub { (words::amount(used, currency)) " given, no budget" }
        },
        Some(budget) => {
            let redeemed = percent(totals.redeemed_minor, budget);
            let held = percent(totals.held_minor, budget).min(100.0 - redeemed);
            let label = format!(
                "{} redeemed and {} held of {}",
                words::amount(totals.redeemed_minor, currency),
                words::amount(totals.held_minor, currency),
                words::amount(budget, currency)
            );
            html! {
                div.budget {
                    svg.bar role="img" aria-label=(label) viewBox="0 0 100 8" preserveAspectRatio="none" {
                        rect.track x="0" y="0" width="100" height="8" {}
                        rect.redeemed x="0" y="0" width=(format!("{redeemed:.2}")) height="8" {}
                        rect.held x=(format!("{redeemed:.2}")) y="0" width=(format!("{held:.2}")) height="8" {}
                    }
                    span.sub { (label) }
                }
            }
        }
    }
}

fn redemptions(totals: &Totals, max: Option<i64>) -> String {
    let count = totals.redemptions + totals.held;
    match max {
        Some(m) => format!("{} of {}", ui::int(count), ui::int(m)),
        None => ui::int(count),
    }
}

async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    let query = match q.parse() {
        Ok(query) => query,
        Err(e) => return error_page(e),
    };
    let promotions = match ctx.state.services.store.promotions(query).await {
        Ok(p) => p,
        Err(e) => return error_page(e.into()),
    };
    let next = (promotions.len() == PAGE_ROWS as usize)
        .then(|| promotions.last().map(|p| p.id.get().to_string()))
        .flatten();
    let selected = |field: &Option<String>, value: &str| nonempty(field) == Some(value);
    let may_create = ctx.may_call("POST", "/api/v1/promotions");
    let body = html! {
        div.actions.page-actions {
            @if may_create { a.button href="/console/promotions/new" { "New promotion" } }
            a.button.secondary href="/console/promotions/preview" { "Preview a cart" }
        }
        form #promotion-filter .inline method="get" action="/console/promotions" {
            label { "Active"
                select name="active" {
                    option value="" { "Any" }
                    option value="true" selected[selected(&q.active, "true")] { "Active" }
                    option value="false" selected[selected(&q.active, "false")] { "Off" }
                }
            }
            label { "Trigger"
                select name="trigger" {
                    option value="" { "Any" }
                    option value="automatic" selected[selected(&q.trigger, "automatic")] { "Automatic" }
                    option value="code" selected[selected(&q.trigger, "code")] { "By code" }
                }
            }
            div.actions { button type="submit" { "Show" } }
        }
        @if promotions.is_empty() {
            p.sub { "No promotions here yet." }
        } @else {
            table #promotions aria-label="Promotions, oldest first" {
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Trigger" }
                    th scope="col" { "State" }
                    th scope="col" { "Class, priority" }
                    th scope="col" { "Budget used" }
                    th.num scope="col" { "Redemptions, with holds" }
                } }
                tbody {
                    @for p in &promotions {
                        (row(p))
                    }
                }
            }
            (ui::pager(&q.base(), next))
        }
    };
    ctx.page("Promotions", &[], body)
}

fn row(p: &StoredPromotion) -> Markup {
    let spec = p.promotion.spec();
    let currency = spec.conditions.currency.as_deref();
    html! {
        tr {
            td { a href={ "/console/promotions/" (p.id.get()) } { (spec.name) } }
            td { (words::trigger(spec.trigger)) }
            td { (active_badge(p.active)) }
            td {
                (spec.stacking.class) " · " (spec.stacking.priority)
                @if spec.stacking.exclusive { " " span.badge.warn { "exclusive" } }
            }
            td { (budget_bar(&p.totals, spec.limits.budget_minor, currency)) }
            td.num { (redemptions(&p.totals, spec.limits.redemptions_max)) }
        }
    }
}

/// The spec's JSON as a person edits it: only what was written, not every field left at its
/// default (each absent field reads as its default again, so the spec is the same).
fn pretty(spec: &allot_domain::promotion::PromotionSpec) -> String {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    prune(&mut value);
    // In the spec's own order (a JSON map here sorts its keys): the name first.
    let mut fields = Vec::new();
    for key in [
        "name",
        "description",
        "trigger",
        "conditions",
        "actions",
        "stacking",
        "limits",
    ] {
        if let Some(v) = value.get(key) {
            let inner = serde_json::to_string_pretty(v).unwrap_or_default();
            fields.push(format!("  \"{key}\": {}", inner.replace('\n', "\n  ")));
        }
    }
    format!("{{\n{}\n}}", fields.join(",\n"))
}

fn count(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", ui::int(n), if n == 1 { one } else { many })
}

fn prune(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                prune(v);
            }
            map.retain(|_, v| match v {
                Value::Null | Value::Bool(false) => false,
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            });
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

/// The spec textarea and the active box, shared by the create and edit forms.
fn spec_fields(id: &str, json: &str, active: bool) -> Markup {
    html! {
        label {
            "Specification (JSON)"
            span.hint #{ (id) "-hint" } { "name, trigger, conditions, actions, stacking, limits: see the API's PromotionSpec" }
            textarea #{ (id) "-spec" } .spec name="spec" data-type="json" data-spread rows="18"
                spellcheck="false" aria-describedby={ (id) "-hint" } { (json) }
        }
        label { input type="checkbox" name="active" data-type="bool" checked[active]; "Active" }
    }
}

async fn new(ctx: Ctx) -> Response {
    let examples = words::examples();
    let first = examples.first().map(|(_, s)| pretty(s)).unwrap_or_default();
    let body = html! {
        p.sub { "A promotion is written as JSON, checked by the API as it is saved; an error names the field. Start from an example:" }
        div.actions #promotion-examples role="group" aria-label="Examples" {
            @for (label, spec) in &examples {
                button.secondary type="button" data-example=(pretty(spec)) data-for="promotion-create-spec" { (label) }
            }
        }
        (ui::api_form(
            "promotion-create",
            "POST",
            "/api/v1/promotions",
            "/console/promotions/{id}",
            "stack wide",
            spec_fields("promotion-create", &first, true),
            "Create promotion",
        ))
    };
    ctx.page("New promotion", &["promotions.js"], body)
}

async fn detail(
    ctx: Ctx,
    Path(raw): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let id = match promotion_id(&raw) {
        Ok(id) => id,
        Err(e) => return error_page(e),
    };
    let before = match q.get("before").map(String::as_str) {
        None | Some("") => 0,
        Some(raw) => match raw.parse::<i64>().ok().filter(|n| *n >= 0) {
            Some(n) => n,
            None => return error_page(invalid("before", "must be a whole number, 0 or more")),
        },
    };
    let store = &ctx.state.services.store;
    let p = match store.promotion(id).await {
        Ok(Some(p)) => p,
        Ok(None) => return error_page(ServiceError::NotFound { what: "promotion" }),
        Err(e) => return error_page(e.into()),
    };
    let holds = match store.promotion_holds(id, before, HOLD_ROWS).await {
        Ok(h) => h,
        Err(e) => return error_page(e.into()),
    };
    let older = (holds.len() == HOLD_ROWS as usize)
        .then(|| holds.last().map(|h| h.id))
        .flatten();
    let spec = p.promotion.spec();
    let cur = spec.conditions.currency.as_deref();
    let base = format!("/console/promotions/{}", id.get());
    let may_edit = ctx.may_call("PUT", "/api/v1/promotions/{id}");
    let may_bind = ctx.may_call("POST", "/api/v1/promotions/{id}/codes");
    let body = html! {
        p.sub {
            (active_badge(p.active)) " · " (words::trigger(spec.trigger))
            " · version " (p.version) " · changed " (ui::time(p.updated_at.as_millis()))
        }
        @if let Some(d) = &spec.description { p #promotion-description { (d) } }
        div.row {
            section.panel aria-labelledby="spec-title" {
                h2 #spec-title { "What it does" }
                h3 { "When" }
                ul #promotion-conditions { @for c in words::conditions(&spec.conditions) { li { (c) } } }
                h3 { "It gives" }
                ol #promotion-actions { @for a in &spec.actions { li { (words::action(a, cur)) } } }
                h3 { "Stacking" }
                p #promotion-stacking { (words::stacking(&spec.stacking)) }
                h3 { "Limits" }
                ul #promotion-limits { @for l in words::limits(&spec.limits, cur) { li { (l) } } }
            }
            section.panel aria-labelledby="usage-title" {
                h2 #usage-title { "Usage" }
                dl.pairs #promotion-usage {
                    dt { "Redeemed" } dd { (words::amount(p.totals.redeemed_minor, cur)) " in " (count(p.totals.redemptions, "redemption", "redemptions")) }
                    dt { "Held now" } dd { (words::amount(p.totals.held_minor, cur)) " in " (count(p.totals.held, "hold", "holds")) }
                    dt { "Counted" } dd { (redemptions(&p.totals, spec.limits.redemptions_max)) " (redeemed and held)" }
                }
                (budget_bar(&p.totals, spec.limits.budget_minor, cur))
            }
        }
        h2 { "Latest holds" }
        (holds_table(id, &holds))
        @if let Some(o) = older {
            nav.pager aria-label="Holds pages" {
                a href=(base) { "Newest" }
                a href={ (base) "?before=" (o) } { "Older holds" }
            }
        }
        div.row {
            @if may_bind {
                section.panel aria-labelledby="bind-title" {
                    h2 #bind-title { "Bind codes" }
                    p.sub { "Existing coupons and discount codes, or every code of a campaign, reach this promotion from now on. A code is bound to one promotion at most." }
                    (ui::api_form(
                        "promotion-bind",
                        "POST",
                        &format!("/api/v1/promotions/{}/codes", id.get()),
                        "",
                        "stack",
                        html! {
                            (ui::field("Coupons", "coupons", "text", "list", false, "codes, comma separated"))
                            (ui::field("Discount codes", "discount_codes", "text", "list", false, "codes, comma separated"))
                            (ui::field("Campaign", "campaign_id", "number", "int", false, "a campaign's id: all its codes"))
                        },
                        "Bind codes",
                    ))
                }
            }
            @if may_edit {
                section.panel aria-labelledby="edit-title" {
                    h2 #edit-title { "Edit" }
                    p.sub { "Replaces the specification; what was redeemed and held stays, and a limit below it is refused." }
                    (ui::api_form(
                        "promotion-edit",
                        "PUT",
                        &format!("/api/v1/promotions/{}", id.get()),
                        "reload",
                        "stack wide",
                        spec_fields("promotion-edit", &pretty(spec), p.active),
                        "Save",
                    ))
                }
            }
        }
    };
    ctx.page(&spec.name, &["promotions.js"], body)
}

fn holds_table(id: PromotionId, holds: &[Hold]) -> Markup {
    if holds.is_empty() {
        return html! { p.sub #promotion-holds { "No holds yet." } };
    }
    html! {
        table #promotion-holds aria-label="Holds of this promotion, newest first" {
            thead { tr {
                th.num scope="col" { "Hold" }
                th scope="col" { "Status" }
                th scope="col" { "Customer" }
                th scope="col" { "Code" }
                th.num scope="col" { "This promotion" }
                th scope="col" { "Reference" }
                th scope="col" { "Made" }
                th scope="col" { "Expires" }
            } }
            tbody {
                @for h in holds {
                    @let mine = h.promotions.iter().find(|x| x.promotion == id);
                    tr {
                        td.num { (h.id) }
                        td { (hold_badge(h.status)) }
                        td.mono { (h.customer.as_deref().unwrap_or("guest")) }
                        td.mono { (mine.and_then(|m| m.code.as_ref()).map_or("–", |(c, _)| c.as_str())) }
                        td.num { (ui::money(mine.map_or(0, |m| m.amount_minor), &h.currency)) }
                        td.mono { (h.reference.as_deref().unwrap_or("–")) }
                        td { (ui::time(h.created_at.as_millis())) }
                        td { (ui::time(h.expires_at.as_millis())) }
                    }
                }
            }
        }
    }
}

/// The preview form: lines, customer and codes, sent to the API's evaluate by promotions.js,
/// which writes the answer out line by line below it.
async fn preview(ctx: Ctx) -> Response {
    let body = html! {
        p.sub { "What a cart would get now, explained line by line, and why each code entered gives nothing. Changes nothing. Prices left empty come from the catalog for Allot's products; amounts in minor units (cents)." }
        form #promotion-preview .stack.wide data-evaluate="/api/v1/promotions/evaluate" novalidate {
            fieldset {
                legend { "Lines" }
                table.lines aria-label="Cart lines" {
                    thead { tr {
                        th scope="col" { "Product id" }
                        th scope="col" { "Quantity" }
                        th scope="col" { "Unit price (minor)" }
                        th scope="col" { "Category ids" }
                        th scope="col" { "Attributes (k=v, …)" }
                    } }
                    tbody {
                        @for i in 0..PREVIEW_LINES {
                            @let n = i + 1;
                            tr data-line=(i) {
                                td { input type="number" name={ "lines." (i) ".product_id" } aria-label={ "Line " (n) ": product id" }; }
                                td { input type="number" name={ "lines." (i) ".quantity" } min="1" aria-label={ "Line " (n) ": quantity" }; }
                                td { input type="number" name={ "lines." (i) ".unit_price_minor" } min="0" aria-label={ "Line " (n) ": unit price in minor units" }; }
                                td { input type="text" name={ "lines." (i) ".category_ids" } aria-label={ "Line " (n) ": category ids, comma separated" }; }
                                td { input type="text" name={ "lines." (i) ".attributes" } aria-label={ "Line " (n) ": attributes as key=value, comma separated" }; }
                            }
                        }
                    }
                }
            }
            div.row {
                fieldset {
                    legend { "Cart" }
                    (ui::field("Currency", "currency", "text", "", false, "three letters; the catalog's when left out"))
                    (ui::field("Shipping (minor)", "shipping_minor", "number", "int", false, ""))
                    (ui::field("Codes", "codes", "text", "list", false, "comma separated"))
                }
                fieldset {
                    legend { "Customer" }
                    (ui::field("Customer id", "customer.id", "text", "", false, "an Allot user gives its role and orders"))
                    (ui::field("Role", "customer.role", "text", "", false, ""))
                    (ui::field("Tags", "customer.tags", "text", "list", false, "comma separated"))
                    (ui::field("Earlier orders", "customer.orders_before", "number", "int", false, ""))
                }
            }
            p #promotion-preview-error .alert role="alert" {}
            div.actions { button type="submit" { "Preview" } }
        }
        section #preview-result aria-live="polite" aria-labelledby="preview-title" hidden {
            h2 #preview-title { "What this cart gets" }
            dl.pairs #preview-totals {}
            table #preview-lines aria-label="Each line, its discounts" {
                thead { tr {
                    th.num scope="col" { "Line" }
                    th scope="col" { "Product" }
                    th.num scope="col" { "Quantity" }
                    th.num scope="col" { "Price" }
                    th.num scope="col" { "Discount" }
                    th.num scope="col" { "To pay" }
                    th scope="col" { "By promotion" }
                } }
                tbody {}
            }
            h3 { "Applied" }
            table #preview-applied aria-label="Promotions applied, in order" {
                thead { tr {
                    th scope="col" { "Promotion" }
                    th scope="col" { "Code" }
                    th.num scope="col" { "Off the lines and shipping" }
                    th.num scope="col" { "Of which shipping" }
                    th scope="col" { "Budget" }
                } }
                tbody {}
            }
            h3 { "Refused" }
            table #preview-refused aria-label="Codes and promotions refused, and why" {
                thead { tr {
                    th scope="col" { "Code" }
                    th scope="col" { "Promotion" }
                    th scope="col" { "Reason" }
                    th scope="col" { "Why" }
                } }
                tbody {}
            }
        }
    };
    ctx.page("Preview a cart", &["promotions.js"], body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_edited_json_leaves_defaults_out_and_reads_back_as_the_same_spec() {
        for (_, spec) in super::words::examples() {
            let json = super::pretty(&spec);
            assert!(!json.contains("null"), "{json}");
            assert!(json.starts_with("{\n  \"name\": "), "{json}");
            let back: allot_domain::promotion::PromotionSpec =
                serde_json::from_str(&json).expect("the JSON reads back");
            assert_eq!(back, spec, "{json}");
        }
    }

    #[test]
    fn a_budget_bar_never_overflows() {
        assert_eq!(super::percent(150, 100), 100.0);
        assert_eq!(super::percent(5, 0), 0.0);
        assert_eq!(super::percent(-1, 10), 0.0);
    }
}

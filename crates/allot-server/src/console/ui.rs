//! Pieces the pages share: API forms, fields, tables and pagers. A page composes these so
//! that every form behaves alike (sent to the API by app.js, errors shown naming the field).

#![allow(dead_code)] // Until the pages that use them land (issue 15, in progress).

use maud::{Markup, html};

/// A form sent to the REST API by app.js: `method` and `api` (a route with `{name}`s filled
/// from the form's `data-path` fields), `then` (a URL template filled from the answer, or
/// "reload"; empty: stay and show `done`). The alert and status elements are inside.
pub(crate) fn api_form(
    id: &str,
    method: &str,
    api: &str,
    then: &str,
    class: &str,
    fields: Markup,
    submit: &str,
) -> Markup {
    html! {
        form id=(id) class=(class) data-api=(api) data-method=(method) data-then=(then) novalidate {
            (fields)
            p id={ (id) "-error" } .alert role="alert" {}
            p.status role="status" {}
            div.actions { button type="submit" { (submit) } }
        }
    }
}

/// A labelled input named after the API's field; `ty` the input type, `data_type` how
/// app.js sends it ("" for a string, "int", "number", "bool", "json", "list", "datetime").
pub(crate) fn field(
    label: &str,
    name: &str,
    ty: &str,
    data_type: &str,
    required: bool,
    hint: &str,
) -> Markup {
    html! {
        label {
            (label)
            @if !hint.is_empty() { span.hint { (hint) } }
            @if data_type.is_empty() {
                input type=(ty) name=(name) required[required];
            } @else {
                input type=(ty) name=(name) data-type=(data_type) required[required];
            }
        }
    }
}

/// Older/newer links of a keyset-paged list: `next` is the cursor of the following page.
pub(crate) fn pager(base: &str, next: Option<String>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            a href=(base) { "First page" }
            @if let Some(cursor) = next {
                a href={ (base) (if base.contains('?') { "&" } else { "?" }) "after=" (cursor) } { "Next page" }
            }
        }
    }
}

/// A count of things, with thousands separated.
pub(crate) fn int(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount in minor units as people read it: `24.00 EUR`, `1,500 KRW`, by the ISO 4217
/// exponent of the currency (2 unless it is one of the few with 0 or 3 decimals).
pub(crate) fn money(minor: i64, currency: &str) -> String {
    let exponent = match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    };
    let scale = 10_i128.pow(exponent);
    let n = i128::from(minor);
    let whole = int(n / scale);
    let whole = if n < 0 && n / scale == 0 {
        format!("-{whole}")
    } else {
        whole
    };
    if exponent == 0 {
        format!("{whole} {currency}")
    } else {
        let frac = (n % scale).unsigned_abs();
        format!(
            "{whole}.{frac:0width$} {currency}",
            width = exponent as usize
        )
    }
}

/// A Unix time in milliseconds as an RFC 3339 UTC string (what the API speaks).
pub(crate) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ints_are_grouped() {
        assert_eq!(super::int(0), "0");
        assert_eq!(super::int(999), "999");
        assert_eq!(super::int(1_000), "1,000");
        assert_eq!(super::int(-1_234_567), "-1,234,567");
    }

    #[test]
    fn money_reads_in_the_currency_s_own_decimals() {
        assert_eq!(super::money(2_400, "EUR"), "24.00 EUR");
        assert_eq!(super::money(123_456_789, "USD"), "1,234,567.89 USD");
        assert_eq!(super::money(1_500, "KRW"), "1,500 KRW");
        assert_eq!(super::money(1_005, "KWD"), "1.005 KWD");
        assert_eq!(super::money(-5, "EUR"), "-0.05 EUR");
    }
}

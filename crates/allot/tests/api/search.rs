//! Product search over REST, on the suite's backend: full text over name, description and
//! text attribute values, ranked, the last word a prefix, combined with the listing's filters,
//! facets equal to a full scan's counts, stable pages, hostile search texts, and writes seen by
//! the next search.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::helpers::{TestApp, http};

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(client: &reqwest::Client, base: &str, body: Value) -> i64 {
    let r = client
        .post(format!("{base}/api/v1/products"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn category(client: &reqwest::Client, base: &str, name: &str, parent: Option<i64>) -> i64 {
    let r = client
        .post(format!("{base}/api/v1/categories"))
        .json(&json!({"name": name, "parent_id": parent}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// Percent-encodes every byte but letters and digits.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The ids a search answers on its first page (up to 100), in order.
async fn ids(client: &reqwest::Client, base: &str, query: &str) -> Vec<i64> {
    let (status, page) = get(client, format!("{base}/api/v1/products?{query}&limit=100")).await;
    assert_eq!(status, 200, "{query}: {page}");
    page["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

/// Every page of a listing, following `next_cursor`.
async fn walk(client: &reqwest::Client, base: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/products?{query}&limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(client, url).await;
        assert_eq!(status, 200, "{query}: {page}");
        let products = page["products"].as_array().unwrap().clone();
        assert!(products.len() <= limit);
        all.extend(products);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
        assert!(all.len() < 1_000, "the walk does not end");
    }
}

/// The words of a text as the search reads them: runs of letters and digits, lower-cased.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether a product (as listed) matches a search text: every word is one of its words
/// (name, description, text attribute values), the last a prefix of one.
fn matches(p: &Value, q: &str) -> bool {
    let mut text = format!(
        "{} {}",
        p["name"].as_str().unwrap(),
        p["description"].as_str().unwrap()
    );
    for v in p["attributes"].as_object().unwrap().values() {
        if let Some(t) = v.as_str() {
            text.push(' ');
            text.push_str(t);
        }
    }
    let have = words(&text);
    let want = words(q);
    let Some((last, rest)) = want.split_last() else {
        return true;
    };
    rest.iter().all(|w| have.contains(w)) && have.iter().any(|h| h.starts_with(last.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_names_first_matches_prefixes_and_attribute_values() {
    let app = TestApp::spawn().await;
    let c = http();
    let base = app.url();
    let in_desc = create(
        &c,
        &base,
        json!({"sku": "BAG", "name": "Messenger bag", "description": "Fits any laptop up to 15 inches.",
               "price": {"amount_minor": 4000, "currency": "EUR"}}),
    )
    .await;
    let in_name = create(
        &c,
        &base,
        json!({"sku": "LAP", "name": "Travel Laptop", "description": "Light and fast.",
               "price": {"amount_minor": 90000, "currency": "EUR"}}),
    )
    .await;
    let in_attr = create(
        &c,
        &base,
        json!({"sku": "SHIRT", "name": "T-Shirt", "description": "Cotton.",
               "price": {"amount_minor": 1500, "currency": "EUR"},
               "attributes": {"color": "Crimson", "size": 42, "organic": true}}),
    )
    .await;
    create(
        &c,
        &base,
        json!({"sku": "MUG", "name": "Mug", "price": {"amount_minor": 800, "currency": "EUR"}}),
    )
    .await;

    // The name outranks the description, whatever the creation order.
    assert_eq!(ids(&c, &base, "q=laptop").await, vec![in_name, in_desc]);
    assert_eq!(ids(&c, &base, "q=LAPTOP").await, vec![in_name, in_desc]);
    // The last word is a prefix, as one types; the words before it are whole words.
    assert_eq!(ids(&c, &base, "q=lapt").await, vec![in_name, in_desc]);
    assert_eq!(ids(&c, &base, "q=l").await, vec![in_name, in_desc]);
    assert_eq!(ids(&c, &base, "q=travel%20lap").await, vec![in_name]);
    assert_eq!(ids(&c, &base, "q=trav%20laptop").await, Vec::<i64>::new());
    // Attribute text values are searched (numbers and booleans are not); punctuation only
    // separates words.
    assert_eq!(ids(&c, &base, "q=crimson").await, vec![in_attr]);
    assert_eq!(ids(&c, &base, "q=42").await, Vec::<i64>::new());
    assert_eq!(ids(&c, &base, "q=t%20shirt").await, vec![in_attr]);
    assert_eq!(ids(&c, &base, "q=t-shirt,%20crimson!").await, vec![in_attr]);
    // A search sorted otherwise keeps the matches and their order by that sort.
    assert_eq!(
        ids(&c, &base, "q=laptop&sort=price").await,
        vec![in_desc, in_name]
    );
    // Three tiers, whatever the creation order: every word in the name, then every word in
    // the name or an attribute value, then the rest; within a tier by id.
    let desc_only = create(
        &c,
        &base,
        json!({"sku": "SOCKS", "name": "Socks", "description": "A crimson heel.",
               "price": {"amount_minor": 500, "currency": "EUR"}}),
    )
    .await;
    let named = create(
        &c,
        &base,
        json!({"sku": "SCARF", "name": "Crimson scarf", "description": "Wool.",
               "price": {"amount_minor": 2500, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(
        ids(&c, &base, "q=crimson").await,
        vec![named, in_attr, desc_only]
    );
    assert_eq!(
        ids(&c, &base, "q=crim").await,
        vec![named, in_attr, desc_only]
    );
    // A word in the name and one in an attribute value: the second tier.
    assert_eq!(ids(&c, &base, "q=shirt%20crimson").await, vec![in_attr]);
    assert_eq!(ids(&c, &base, "q=socks%20crimson").await, vec![desc_only]);
    // No words: nothing is searched for, as with a blank q.
    assert_eq!(ids(&c, &base, "q=%20%2A%20").await.len(), 6);

    // Writes are seen by the next search: a new name, a new attribute value, a deletion.
    let r = c
        .put(format!("{base}/api/v1/products/{in_desc}"))
        .json(
            &json!({"sku": "BAG", "name": "Laptop sleeve", "description": "Neoprene.",
                      "price": {"amount_minor": 4000, "currency": "EUR"},
                      "attributes": {"color": "Teal"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(ids(&c, &base, "q=messenger").await, Vec::<i64>::new());
    assert_eq!(ids(&c, &base, "q=inches").await, Vec::<i64>::new());
    assert_eq!(ids(&c, &base, "q=sleeve").await, vec![in_desc]);
    assert_eq!(ids(&c, &base, "q=teal").await, vec![in_desc]);
    let both = ids(&c, &base, "q=laptop").await;
    assert_eq!(both.len(), 2);
    let r = c
        .delete(format!("{base}/api/v1/products/{in_name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(ids(&c, &base, "q=laptop").await, vec![in_desc]);
    assert_eq!(ids(&c, &base, "q=travel").await, Vec::<i64>::new());
    // A new product with the deleted one's words is found alone.
    let again = create(
        &c,
        &base,
        json!({"sku": "LAP", "name": "Travel Laptop",
               "price": {"amount_minor": 1, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(ids(&c, &base, "q=travel").await, vec![again]);
}

/// Facets as a full scan of `products` counts them.
fn scan_facets(products: &[Value]) -> Value {
    let mut categories: BTreeMap<String, i64> = BTreeMap::new();
    let mut attributes: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for p in products {
        *categories.entry(p["category_id"].to_string()).or_default() += 1;
        for (k, v) in p["attributes"].as_object().unwrap() {
            *attributes
                .entry(k.clone())
                .or_default()
                .entry(v.to_string())
                .or_default() += 1;
        }
    }
    json!({"total": products.len(), "categories": categories, "attributes": attributes})
}

/// The facets of a response in the shape of [`scan_facets`].
fn answered_facets(f: &Value) -> Value {
    let mut categories: BTreeMap<String, i64> = BTreeMap::new();
    for c in f["categories"].as_array().unwrap() {
        categories.insert(c["category_id"].to_string(), c["count"].as_i64().unwrap());
    }
    let mut attributes: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (k, values) in f["attributes"].as_object().unwrap() {
        let counts = values.as_array().unwrap();
        // The most frequent first.
        assert!(
            counts
                .windows(2)
                .all(|w| w[0]["count"].as_i64() >= w[1]["count"].as_i64()),
            "{values}"
        );
        for v in counts {
            attributes
                .entry(k.clone())
                .or_default()
                .insert(v["value"].to_string(), v["count"].as_i64().unwrap());
        }
    }
    json!({"total": f["total"], "categories": categories, "attributes": attributes})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_combines_with_filters_pages_stably_and_counts_facets_over_the_whole_result() {
    let app = TestApp::spawn().await;
    let c = http();
    let base = app.url();
    let electronics = category(&c, &base, "Electronics", None).await;
    let computers = category(&c, &base, "Computers", Some(electronics)).await;
    let home = category(&c, &base, "Home", None).await;
    let nouns = ["laptop", "lamp", "ladder", "cable", "kettle"];
    let adjectives = ["black", "silver", "compact", "classic"];
    let colors = ["red", "blue", "black"];
    for i in 0..41usize {
        let noun = nouns[i % nouns.len()];
        let adjective = adjectives[i % adjectives.len()];
        let category = match i % 4 {
            0 => Some(electronics),
            1 => Some(computers),
            2 => Some(home),
            _ => None,
        };
        // Several products share a text exactly (equal scores: ties broken by id).
        let description = if i % 3 == 0 {
            format!(
                "A {} {} for every day.",
                nouns[(i + 1) % nouns.len()],
                "companion"
            )
        } else {
            "Plain.".to_owned()
        };
        create(
            &c,
            &base,
            json!({"sku": format!("S-{i:02}"), "name": format!("{adjective} {noun}"),
                   "description": description,
                   "price": {"amount_minor": (i as i64 % 7) * 1000, "currency": "EUR"},
                   "category_id": category, "active": i % 6 != 0,
                   "attributes": {"color": colors[i % 3], "watts": (i % 4) * 10, "eco": i % 2 == 0}}),
        )
        .await;
    }
    let all = walk(&c, &base, "sort=created", 100).await;
    assert_eq!(all.len(), 41);
    let in_tree = move |p: &Value| {
        let cat = p["category_id"].as_i64();
        cat == Some(electronics) || cat == Some(computers)
    };
    let price = |p: &Value| p["price"]["amount_minor"].as_i64().unwrap();
    type Keep = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, String, Keep)> = vec![
        ("laptop", String::new(), Box::new(|_| true)),
        ("la", String::new(), Box::new(|_| true)),
        ("black", String::new(), Box::new(|_| true)),
        ("compact la", String::new(), Box::new(|_| true)),
        ("companion", String::new(), Box::new(|_| true)),
        (
            "l",
            format!("&category={electronics}"),
            Box::new(move |p| in_tree(p)),
        ),
        (
            "la",
            "&min_price=2000&max_price=5000".to_owned(),
            Box::new(move |p| (2000..=5000).contains(&price(p))),
        ),
        (
            "black",
            "&attr.color=blue&active=true".to_owned(),
            Box::new(|p| p["attributes"]["color"] == "blue" && p["active"] == true),
        ),
        (
            "c",
            format!("&category={computers}&attr.eco=false"),
            Box::new(move |p| {
                p["category_id"].as_i64() == Some(computers) && p["attributes"]["eco"] == false
            }),
        ),
        ("nothingmatches", String::new(), Box::new(|_| true)),
    ];
    for (q, filters, keep) in cases {
        let expected: Vec<&Value> = all.iter().filter(|p| matches(p, q) && keep(p)).collect();
        let query = format!("q={}{filters}", enc(q));
        // Pages of 3 by relevance: every match once, in the same order on every walk.
        let walked = walk(&c, &base, &query, 3).await;
        let walked_ids: Vec<i64> = walked.iter().map(|p| p["id"].as_i64().unwrap()).collect();
        let unique: HashSet<i64> = walked_ids.iter().copied().collect();
        assert_eq!(unique.len(), walked_ids.len(), "{query}: duplicates");
        let mut got = walked_ids.clone();
        got.sort();
        let mut want: Vec<i64> = expected.iter().map(|p| p["id"].as_i64().unwrap()).collect();
        want.sort();
        assert_eq!(got, want, "{query}");
        let one_page = ids(&c, &base, &query).await;
        assert_eq!(one_page, walked_ids, "{query}: pages in one order");
        let again: Vec<i64> = walk(&c, &base, &query, 7)
            .await
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            again, walked_ids,
            "{query}: another page size, the same order"
        );
        // Facets count the whole result, not the page.
        let (status, page) = get(
            &c,
            format!("{base}/api/v1/products?{query}&limit=2&facets=true"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let owned: Vec<Value> = expected.into_iter().cloned().collect();
        assert_eq!(
            answered_facets(&page["facets"]),
            scan_facets(&owned),
            "{query}"
        );
    }
    // Facets without q, and none unless asked for.
    let (_, page) = get(&c, format!("{base}/api/v1/products?facets=true&limit=1")).await;
    assert_eq!(answered_facets(&page["facets"]), scan_facets(&all));
    let (_, page) = get(&c, format!("{base}/api/v1/products?q=lamp")).await;
    assert!(page.get("facets").is_none(), "{page}");
    // Relevance without q is by id.
    let by_relevance = walk(&c, &base, "sort=relevance", 5).await;
    assert_eq!(
        by_relevance.iter().map(|p| &p["id"]).collect::<Vec<_>>(),
        all.iter().map(|p| &p["id"]).collect::<Vec<_>>()
    );
    // A cursor made for relevance is refused by another sort, and a forged one is refused.
    let (_, first) = get(&c, format!("{base}/api/v1/products?q=la&limit=2")).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, _) = get(
        &c,
        format!("{base}/api/v1/products?q=la&sort=price&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, 422);
    let nan = format!("relevance|1|i{}", f64::NAN.to_bits() as i64);
    let forged: String = nan.bytes().map(|b| format!("{b:02x}")).collect();
    let (status, body) = get(&c, format!("{base}/api/v1/products?q=la&cursor={forged}")).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_answers_hostile_texts_with_200_or_422_never_500() {
    let app = TestApp::spawn().await;
    let c = http();
    let base = app.url();
    for (sku, name) in [
        ("A", "Laptop \"Pro\" 15"),
        ("B", "O'Reilly book: NEAR(x y)"),
    ] {
        create(
            &c,
            &base,
            json!({"sku": sku, "name": name, "description": "a*b & c | !d :* 'e' \\ f",
                   "price": {"amount_minor": 100, "currency": "EUR"}}),
        )
        .await;
    }
    let long_quotes = "\"".repeat(200);
    let long_letters = "é".repeat(200);
    let long_words = "ab ".repeat(66);
    let hostile = [
        "\"",
        "\"\"",
        "*",
        "**",
        "NEAR(",
        "NEAR(a b, 3)",
        ":*",
        "a:*",
        "&|!",
        "a & b",
        "(a | b)",
        "!a",
        "'",
        "''",
        "\\",
        "a\\",
        "\"a\" OR \"b\"",
        "a AND NOT b",
        "name:laptop",
        "{name}: x",
        "^laptop",
        "laptop -pro",
        "a+b",
        "laptop*",
        "-",
        "'; DROP TABLE products; --",
        "<->",
        "a <-> b",
        "a <2> b",
        "日本語",
        "ÉCOLE",
        "naïve café",
        "🙂",
        "𞤀𞤁",
        "\u{200b}",
        "\u{fffd}",
        "%",
        "_",
        "%_%",
        "0x00",
        "1e308",
        "NaN",
        &long_quotes,
        &long_letters,
        &long_words,
    ];
    for q in hostile {
        for extra in ["", "&facets=true", "&sort=name", "&sort=relevance&limit=1"] {
            let (status, body) =
                get(&c, format!("{base}/api/v1/products?q={}{extra}", enc(q))).await;
            assert!(
                status == 200 || status == 422,
                "{q:?}{extra}: {status} {body}"
            );
            if status == 422 {
                assert_eq!(body["error"]["field"], "q", "{q:?}: {body}");
            }
        }
    }
    // Quotes and operators are only separators: the words around them still match.
    assert_eq!(
        ids(&c, &base, &format!("q={}", enc("\"pro\""))).await.len(),
        1
    );
    assert_eq!(
        ids(&c, &base, &format!("q={}", enc("NEAR(x"))).await.len(),
        1
    );
    assert_eq!(
        ids(&c, &base, &format!("q={}", enc("o'reilly")))
            .await
            .len(),
        1
    );
    assert_eq!(
        ids(&c, &base, &format!("q={}", enc("a*b & c|")))
            .await
            .len(),
        2
    );
    // Too long (as sent) and control characters are refused naming q.
    for q in [
        "a".repeat(201),
        " ".repeat(201),
        "a\u{0}b".to_owned(),
        "a\tb".to_owned(),
    ] {
        let (status, body) = get(&c, format!("{base}/api/v1/products?q={}", enc(&q))).await;
        assert_eq!(status, 422, "{q:?}: {body}");
        assert_eq!(body["error"]["field"], "q", "{body}");
    }
}

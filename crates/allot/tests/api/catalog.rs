//! The catalog over REST: products, categories, warehouses, on the suite's backend.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, http};

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    send(client, reqwest::Method::POST, url, Some(body)).await
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    send(client, reqwest::Method::GET, url, None).await
}

fn product(sku: &str, name: &str, price: i64) -> Value {
    json!({"sku": sku, "name": name, "price": {"amount_minor": price, "currency": "EUR"}})
}

async fn create(client: &reqwest::Client, base: &str, body: Value) -> Value {
    let (status, created) = post(client, format!("{base}/api/v1/products"), body).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn category(client: &reqwest::Client, base: &str, name: &str, parent: Option<i64>) -> i64 {
    let (status, c) = post(
        client,
        format!("{base}/api/v1/categories"),
        json!({"name": name, "parent_id": parent}),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    c["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_product_crud_round_trip() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let shirts = category(&client, &base, "Shirts", None).await;
    let body = json!({
        "sku": " Shirt-01.b ", "name": "Blue shirt", "description": "Cotton.\nSlim.",
        "price": {"amount_minor": 1999, "currency": "EUR"}, "category_id": shirts,
        "attributes": {"color": "blue", "size": 42, "weight_kg": 0.25, "organic": true},
        "active": true
    });
    let created = create(&client, &base, body).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["sku"], "Shirt-01.b");
    assert_eq!(
        created["price"],
        json!({"amount_minor": 1999, "currency": "EUR"})
    );
    assert_eq!(
        created["attributes"],
        json!({"color": "blue", "size": 42.0, "weight_kg": 0.25, "organic": true})
    );
    assert_eq!(created["category_id"], shirts);
    let (status, read) = get(&client, format!("{base}/api/v1/products/{id}")).await;
    assert_eq!((status, &read), (200, &created));

    // PUT replaces every field; omitted optional ones take their defaults.
    let (status, updated) = send(
        &client,
        reqwest::Method::PUT,
        format!("{base}/api/v1/products/{id}"),
        Some(json!({"sku": "SHIRT-01.B", "name": "Navy shirt",
                    "price": {"amount_minor": 2500, "currency": "USD"},
                    "attributes": {"color": "navy"}, "active": false})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Navy shirt");
    assert_eq!(updated["sku"], "SHIRT-01.B");
    assert_eq!(updated["description"], "");
    assert_eq!(updated["category_id"], Value::Null);
    assert_eq!(updated["attributes"], json!({"color": "navy"}));
    assert_eq!(updated["active"], false);
    assert_eq!(
        get(&client, format!("{base}/api/v1/products/{id}")).await.1,
        updated
    );

    // Delete marks the product deleted: gone from reads and listings, its row kept, its SKU
    // free again.
    let (status, _) = send(
        &client,
        reqwest::Method::DELETE,
        format!("{base}/api/v1/products/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = get(&client, format!("{base}/api/v1/products/{id}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = send(
        &client,
        reqwest::Method::DELETE,
        format!("{base}/api/v1/products/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, page) = get(&client, format!("{base}/api/v1/products")).await;
    assert_eq!(page["products"], json!([]));
    let db = app.db().await;
    assert_eq!(
        db.count("SELECT count(*) FROM products WHERE deleted_at_ms IS NOT NULL")
            .await,
        1
    );
    let again = create(&client, &base, product("shirt-01.B", "Again", 100)).await;
    assert_ne!(again["id"].as_i64(), Some(id));

    for path in [
        "/api/v1/products/999999",
        "/api/v1/products/abc",
        "/api/v1/products/0",
    ] {
        let (status, body) = get(&client, format!("{base}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_one_sku_raced_by_20_creates_is_stored_once() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}/api/v1/products");
            // One SKU, spelled in different cases: unique case-insensitively.
            let sku = if i % 2 == 0 { "RACE-1" } else { "race-1" };
            tokio::spawn(
                async move { post(&client, url, product(sku, &format!("p{i}"), 100)).await },
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 409 {
            assert_eq!(body["error"]["code"], "sku_taken", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let db = app.db().await;
    assert_eq!(
        db.count("SELECT count(*) FROM products WHERE sku_key = 'race-1'")
            .await,
        1
    );
    // PUT onto another product's SKU is refused too.
    let other = create(&client, &base, product("OTHER", "Other", 1)).await;
    let (status, body) = send(
        &client,
        reqwest::Method::PUT,
        format!("{base}/api/v1/products/{}", other["id"]),
        Some(product("Race-1", "Other", 1)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("sku_taken"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_every_bad_field_is_named_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let good = json!({"sku": "OK-1", "name": "Fine", "description": "d",
                      "price": {"amount_minor": 100, "currency": "EUR"},
                      "category_id": null, "attributes": {"a": 1}, "active": true});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        match field.split_once('.') {
            Some((outer, inner)) => body[outer][inner] = value,
            None => body[field] = value,
        }
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        match field.split_once('.') {
            Some((outer, inner)) => {
                body[outer].as_object_mut().unwrap().remove(inner);
            }
            None => {
                body.as_object_mut().unwrap().remove(field);
            }
        }
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("sku"), "sku"),
        (with("sku", json!("")), "sku"),
        (with("sku", json!("has space")), "sku"),
        (with("sku", json!("x".repeat(65))), "sku"),
        (with("sku", json!(12)), "sku"),
        (without("name"), "name"),
        (with("name", json!("   ")), "name"),
        (with("name", json!("n".repeat(201))), "name"),
        (with("description", json!(5)), "description"),
        (
            with("description", json!("d".repeat(10_001))),
            "description",
        ),
        (without("price"), "price"),
        (with("price", json!(100)), "price"),
        (without("price.amount_minor"), "price.amount_minor"),
        (with("price.amount_minor", json!(-1)), "price.amount_minor"),
        (with("price.amount_minor", json!(1.5)), "price.amount_minor"),
        (
            with("price.amount_minor", json!("100")),
            "price.amount_minor",
        ),
        (without("price.currency"), "price.currency"),
        (with("price.currency", json!("eur")), "price.currency"),
        (with("price.currency", json!("EURO")), "price.currency"),
        (with("category_id", json!(0)), "category_id"),
        (with("category_id", json!("1")), "category_id"),
        (with("category_id", json!(4242)), "category_id"),
        (with("attributes", json!([1])), "attributes"),
        (with("attributes", json!({"Bad Key": 1})), "attributes"),
        (with("attributes", json!({"k": null})), "attributes"),
        (with("attributes", json!({"k": [1]})), "attributes"),
        (
            with("attributes", json!({"k": "v".repeat(501)})),
            "attributes",
        ),
        (with("active", json!("yes")), "active"),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = post(&client, format!("{base}/api/v1/products"), body.clone()).await;
        assert_eq!(status, 422, "{field}: {body} -> {answer}");
        assert_eq!(answer["error"]["code"], "invalid_argument", "{answer}");
        assert_eq!(answer["error"]["field"], field, "{body} -> {answer}");
    }
    let (status, answer) = post(
        &client,
        format!("{base}/api/v1/categories"),
        json!({"name": ""}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("name"))
    );
    let (status, answer) = post(
        &client,
        format!("{base}/api/v1/categories"),
        json!({"name": "x", "parent_id": 77}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("parent_id"))
    );
    for (body, field) in [
        (json!({"code": "", "name": "W"}), "code"),
        (json!({"code": "a.b", "name": "W"}), "code"),
        (json!({"code": "W1"}), "name"),
        (json!({"code": "W1", "name": "W", "active": 1}), "active"),
    ] {
        let (status, answer) =
            post(&client, format!("{base}/api/v1/warehouses"), body.clone()).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    // Not JSON at all: 400.
    let r = client
        .post(format!("{base}/api/v1/products"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    for (query, field) in [
        ("sort=weight", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("min_price=x", "min_price"),
        ("min_price=5&max_price=4", "min_price"),
        ("cursor=zz", "cursor"),
        ("attr.Bad=1", "attr"),
        ("active=maybe", "active"),
        ("colour=red", "query"),
    ] {
        let (status, answer) = get(&client, format!("{base}/api/v1/products?{query}")).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (422, Some(field)),
            "{query}"
        );
    }
    let db = app.db().await;
    for table in ["products", "product_attributes", "categories", "warehouses"] {
        assert_eq!(
            db.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    // The good body is good.
    create(&client, &base, good).await;
    app.stop().await;
}

/// Which products a filter should keep.
type Keep = Box<dyn Fn(&Value) -> bool>;

/// Every page of `query` with `limit`, checking each page's size; the products in order.
async fn walk(client: &reqwest::Client, base: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/products?{query}&limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(client, url).await;
        assert_eq!(status, 200, "{page}");
        let products = page["products"].as_array().unwrap().clone();
        assert!(products.len() <= limit);
        all.extend(products.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(products.len(), limit, "only a full page has a next page");
                cursor = Some(c.to_owned());
            }
            None => return all,
        }
        assert!(all.len() < 1_000, "the walk does not end");
    }
}

fn skus(products: &[Value]) -> Vec<String> {
    products
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_filters_sorting_and_pagination() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let clothes = category(&client, &base, "Clothes", None).await;
    let shirts = category(&client, &base, "Shirts", Some(clothes)).await;
    let toys = category(&client, &base, "Toys", None).await;
    let colors = ["red", "blue", "green"];
    // 23 products; prices repeat so ties are broken by id; names repeat too.
    for i in 0..23i64 {
        let category = match i % 3 {
            0 => clothes,
            1 => shirts,
            _ => toys,
        };
        let name = if i % 4 == 0 {
            "Red Shirt".to_owned()
        } else {
            format!("Item {:02}", 23 - i)
        };
        create(
            &client,
            &base,
            json!({"sku": format!("P-{i:02}"), "name": name,
                   "price": {"amount_minor": (i % 5) * 100, "currency": "EUR"},
                   "category_id": category, "active": i % 7 != 0,
                   "attributes": {"color": colors[(i % 3) as usize], "size": i % 4, "sale": i % 2 == 0}}),
        )
        .await;
    }
    let (_, first) = get(&client, format!("{base}/api/v1/products?limit=100")).await;
    let all = first["products"].as_array().unwrap().clone();
    assert_eq!(all.len(), 23);
    assert_eq!(first["next_cursor"], Value::Null);

    let key_price = |p: &Value| {
        (
            p["price"]["amount_minor"].as_i64().unwrap(),
            p["id"].as_i64().unwrap(),
        )
    };
    let key_name = |p: &Value| {
        (
            p["name"].as_str().unwrap().to_owned(),
            p["id"].as_i64().unwrap(),
        )
    };
    let key_id = |p: &Value| p["id"].as_i64().unwrap();
    for (sort, limit) in [
        ("price", 4),
        ("-price", 5),
        ("name", 3),
        ("-name", 7),
        ("created", 6),
        ("-created", 1),
    ] {
        let walked = walk(&client, &base, &format!("sort={sort}"), limit).await;
        let mut expected = all.clone();
        match sort {
            "price" => expected.sort_by_key(key_price),
            "-price" => expected.sort_by_key(|p| std::cmp::Reverse(key_price(p))),
            "name" => expected.sort_by_key(key_name),
            "-name" => expected.sort_by_key(|p| std::cmp::Reverse(key_name(p))),
            "created" => expected.sort_by_key(key_id),
            _ => expected.sort_by_key(|p| std::cmp::Reverse(key_id(p))),
        }
        assert_eq!(skus(&walked), skus(&expected), "sort={sort}");
        assert_eq!(skus(&walked).into_iter().collect::<HashSet<_>>().len(), 23);
    }

    // Filters, alone and together, through pages.
    let expect = |f: &dyn Fn(&Value) -> bool| {
        let mut s = skus(&all.iter().filter(|p| f(p)).cloned().collect::<Vec<_>>());
        s.sort();
        s
    };
    let sorted = |v: Vec<Value>| {
        let mut s = skus(&v);
        s.sort();
        s
    };
    let cat = |p: &Value| p["category_id"].as_i64().unwrap();
    let price = |p: &Value| p["price"]["amount_minor"].as_i64().unwrap();
    let cases: Vec<(String, Keep)> = vec![
        (
            format!("category={clothes}"),
            Box::new(move |p| cat(p) == clothes || cat(p) == shirts),
        ),
        (
            format!("category={shirts}"),
            Box::new(move |p| cat(p) == shirts),
        ),
        (
            "attr.color=red".to_owned(),
            Box::new(|p| p["attributes"]["color"] == "red"),
        ),
        (
            "attr.size=2".to_owned(),
            Box::new(|p| p["attributes"]["size"] == 2.0),
        ),
        (
            "attr.sale=true".to_owned(),
            Box::new(|p| p["attributes"]["sale"] == true),
        ),
        (
            "attr.color=red&attr.sale=false".to_owned(),
            Box::new(|p| p["attributes"]["color"] == "red" && p["attributes"]["sale"] == false),
        ),
        ("q=shirt".to_owned(), Box::new(|p| p["name"] == "Red Shirt")),
        (
            "q=ITEM%201".to_owned(),
            Box::new(|p| p["name"].as_str().unwrap().starts_with("Item 1")),
        ),
        (
            "min_price=200&max_price=300".to_owned(),
            Box::new(move |p| (200..=300).contains(&price(p))),
        ),
        (
            "active=false".to_owned(),
            Box::new(|p| p["active"] == false),
        ),
        ("currency=USD".to_owned(), Box::new(|_| false)),
        (
            format!("category={toys}&attr.color=blue&min_price=100&sort=-price"),
            Box::new(move |p| {
                cat(p) == toys && p["attributes"]["color"] == "blue" && price(p) >= 100
            }),
        ),
    ];
    for (query, keep) in cases {
        let walked = walk(&client, &base, &query, 2).await;
        assert_eq!(sorted(walked), expect(&*keep), "{query}");
    }
    // A cursor made for one sort is refused by another.
    let (_, page) = get(
        &client,
        format!("{base}/api/v1/products?sort=price&limit=2"),
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, body) = get(
        &client,
        format!("{base}/api/v1/products?sort=name&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("cursor"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_categories_in_use_are_kept_and_the_tree_nests() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let root = category(&client, &base, "Root", None).await;
    let a = category(&client, &base, "A", Some(root)).await;
    let b = category(&client, &base, "B", Some(root)).await;
    let a1 = category(&client, &base, "A1", Some(a)).await;
    let other = category(&client, &base, "Other", None).await;

    let (status, tree) = get(&client, format!("{base}/api/v1/categories/tree")).await;
    assert_eq!(status, 200);
    let shape = |n: &Value| -> Value {
        fn s(n: &Value) -> Value {
            json!([
                n["name"],
                n["children"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(s)
                    .collect::<Vec<_>>()
            ])
        }
        s(n)
    };
    let roots: Vec<Value> = tree["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(shape)
        .collect();
    assert_eq!(
        json!(roots),
        json!([["Root", [["A", [["A1", []]]], ["B", []]]], ["Other", []]])
    );
    let (_, flat) = get(&client, format!("{base}/api/v1/categories")).await;
    assert_eq!(flat["categories"].as_array().unwrap().len(), 5);

    // A category with children, or with a live product, is kept.
    let delete = |id: i64| {
        let client = client.clone();
        let url = format!("{base}/api/v1/categories/{id}");
        async move { send(&client, reqwest::Method::DELETE, url, None).await }
    };
    let (status, body) = delete(a).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("category_in_use")),
        "{body}"
    );
    let p = create(
        &client,
        &base,
        json!({"sku": "IN-B", "name": "In B",
        "price": {"amount_minor": 1, "currency": "EUR"}, "category_id": b}),
    )
    .await;
    let (status, body) = delete(b).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("category_in_use"))
    );
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM categories").await, 5);
    // Once its product is deleted (a soft delete), B may go; the product's row stays.
    let (status, _) = send(
        &client,
        reqwest::Method::DELETE,
        format!("{base}/api/v1/products/{}", p["id"]),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(delete(b).await.0, 204);
    assert_eq!(delete(b).await.0, 404);
    assert_eq!(db.count("SELECT count(*) FROM products").await, 1);
    assert_eq!(delete(a1).await.0, 204);
    assert_eq!(delete(a).await.0, 204);

    // Moves: under another category, not under itself or a descendant.
    let c = category(&client, &base, "C", Some(root)).await;
    let put = |id: i64, body: Value| {
        let client = client.clone();
        let url = format!("{base}/api/v1/categories/{id}");
        async move { send(&client, reqwest::Method::PUT, url, Some(body)).await }
    };
    let (status, moved) = put(other, json!({"name": "Other", "parent_id": c})).await;
    assert_eq!((status, moved["parent_id"].as_i64()), (200, Some(c)));
    for parent in [other, root, c] {
        let (status, body) = put(root, json!({"name": "Root", "parent_id": parent})).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("parent_id")),
            "{parent}"
        );
    }
    let (status, renamed) = put(root, json!({"name": "Everything", "parent_id": null})).await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("Everything"))
    );
    let (status, read) = get(&client, format!("{base}/api/v1/categories/{c}")).await;
    assert_eq!((status, read["parent_id"].as_i64()), (200, Some(root)));
    assert_eq!(put(999_999, json!({"name": "x"})).await.0, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_warehouses_crud_with_unique_codes() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let url = format!("{base}/api/v1/warehouses");
    let (status, w) = post(
        &client,
        url.clone(),
        json!({"code": " seoul-1 ", "name": "Seoul"}),
    )
    .await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(
        (w["code"].as_str(), w["active"].as_bool()),
        (Some("SEOUL-1"), Some(true))
    );
    let id = w["id"].as_i64().unwrap();
    let (status, body) = post(
        &client,
        url.clone(),
        json!({"code": "SEOUL-1", "name": "Again"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("warehouse_code_taken"))
    );
    let (_, busan) = post(
        &client,
        url.clone(),
        json!({"code": "BUSAN", "name": "Busan", "active": false}),
    )
    .await;
    let (status, body) = send(
        &client,
        reqwest::Method::PUT,
        format!("{url}/{}", busan["id"]),
        Some(json!({"code": "seoul-1", "name": "Busan"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("warehouse_code_taken"))
    );
    let (status, updated) = send(
        &client,
        reqwest::Method::PUT,
        format!("{url}/{id}"),
        Some(json!({"code": "SEOUL-2", "name": "Seoul South", "active": false})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(get(&client, format!("{url}/{id}")).await.1, updated);
    let (_, list) = get(&client, url.clone()).await;
    assert_eq!(list["warehouses"].as_array().unwrap().len(), 2);
    assert_eq!(
        send(
            &client,
            reqwest::Method::DELETE,
            format!("{url}/{id}"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(get(&client, format!("{url}/{id}")).await.0, 404);
    assert_eq!(
        app.db()
            .await
            .count("SELECT count(*) FROM warehouses")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_endpoints_are_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let (status, doc) = get(&http(), format!("{}/api/v1/openapi.json", app.url())).await;
    assert_eq!(status, 200);
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/api/v1/products", &["get", "post"][..]),
        ("/api/v1/products/{id}", &["get", "put", "delete"][..]),
        ("/api/v1/categories", &["get", "post"][..]),
        ("/api/v1/categories/tree", &["get"][..]),
        ("/api/v1/categories/{id}", &["get", "put", "delete"][..]),
        ("/api/v1/warehouses", &["get", "post"][..]),
        ("/api/v1/warehouses/{id}", &["get", "put", "delete"][..]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_a_category_deleted_while_products_are_created_in_it_leaves_none_orphaned() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    for round in 0..5 {
        let target = category(&client, &base, &format!("Race {round}"), None).await;
        let creates: Vec<_> = (0..10)
            .map(|i| {
                let client = client.clone();
                let url = format!("{base}/api/v1/products");
                let body = json!({"sku": format!("R{round}-{i}"), "name": "r",
                                  "price": {"amount_minor": 1, "currency": "EUR"},
                                  "category_id": target});
                tokio::spawn(async move { post(&client, url, body).await })
            })
            .collect();
        let (deleted, _) = send(
            &client,
            reqwest::Method::DELETE,
            format!("{base}/api/v1/categories/{target}"),
            None,
        )
        .await;
        let mut stored = 0;
        for c in creates {
            let (status, body) = c.await.unwrap();
            match status {
                201 => stored += 1,
                422 => assert_eq!(body["error"]["field"], "category_id", "{body}"),
                _ => panic!("unexpected {status}: {body}"),
            }
        }
        // Either the delete won (every product after it was refused, none stored before it)
        // or it was refused because products were there.
        match deleted {
            204 => assert_eq!(stored, 0, "round {round}"),
            409 => assert!(stored > 0, "round {round}"),
            other => panic!("delete answered {other}"),
        }
        let db = app.db().await;
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM products WHERE category_id = {target}"
            ))
            .await,
            stored
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_a_warehouse_holding_stock_is_not_deleted() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();
    let (_, w) = post(
        &client,
        format!("{base}/api/v1/warehouses"),
        json!({"code": "MAIN", "name": "Main"}),
    )
    .await;
    let p = create(&client, &base, product("STOCKED", "Stocked", 1)).await;
    // Stock put straight into the table, as the inventory will keep it.
    let insert = format!(
        "INSERT INTO stock_levels (product_id, warehouse_id, on_hand, reserved, updated_at_ms) \
         VALUES ({}, {}, 5, 0, 0)",
        p["id"], w["id"]
    );
    match app.db().await {
        crate::helpers::AppDb::Postgres(pg) => {
            pg.execute(insert.as_str(), &[]).await.unwrap();
        }
        crate::helpers::AppDb::Sqlite(_) => {
            let path = allot_storage::SqliteStore::database_path(&app.data_dir.path().join("data"));
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            conn.execute(&insert, []).unwrap();
        }
    }
    let (status, body) = send(
        &client,
        reqwest::Method::DELETE,
        format!("{base}/api/v1/warehouses/{}", w["id"]),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("warehouse_in_use")),
        "{body}"
    );
    assert_eq!(
        get(&client, format!("{base}/api/v1/warehouses/{}", w["id"]))
            .await
            .0,
        200
    );
    app.stop().await;
}

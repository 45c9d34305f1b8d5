//! Personal data at rest, on the suite's backend: emails and shipping addresses are nowhere in
//! the database in plaintext (users, orders, events, stored idempotent answers), yet sign-in by
//! email, uniqueness and reading an order back work as before; a wrong key refuses to start;
//! a database written before encryption is sealed when it is opened.

use std::path::Path;
use std::sync::Arc;

use allot_domain::UnixMillis;
use allot_domain::auth::{Email, Password, Role};
use allot_server::{AppError, Config, ServiceError};
use allot_storage::crypto::DataKey;
use allot_storage::{Claim, IdempotencyScope, StorageError, Store};
use serde_json::{Value, json};

use crate::helpers::{TestApp, backend, http, test_data_key};

const PASSWORD: &str = "correct horse battery staple";
const EMAIL: &str = "Grace.Hopper@Example.com";

/// Every address field of the test orders, each distinctive enough not to occur by chance.
const ADDRESS: [(&str, &str); 5] = [
    ("name", "Augusta Lovelace-Byron"),
    ("line1", "12 Analytical Engine Lane"),
    ("line2", "Difference Flat 3b"),
    ("city", "Marylebone-upon-Thames"),
    ("postal_code", "NW1X 6XE"),
];

fn address_json() -> Value {
    let mut a = serde_json::Map::new();
    for (field, value) in ADDRESS {
        a.insert(field.to_owned(), json!(value));
    }
    a.insert("country".to_owned(), json!("GB"));
    Value::Object(a)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Everything the database holds: on SQLite the bytes of the database file and its WAL; on
/// PostgreSQL every row of every table as text (byte columns come out in hex).
async fn everything_stored(database: Option<&str>, data_dir: &Path) -> String {
    match database {
        None => {
            let db = allot_storage::SqliteStore::database_path(data_dir);
            let mut bytes = std::fs::read(&db).expect("database file");
            if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
                bytes.extend(wal);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Some(url) => {
            let client = allot_storage::postgres::connect(url)
                .await
                .expect("connects");
            let tables: Vec<String> = client
                .query(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut all = String::new();
            for t in tables {
                let row = client
                    .query_one(
                        &format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {t} t"),
                        &[],
                    )
                    .await
                    .unwrap();
                all.push_str(&row.get::<_, String>(0));
                all.push('\n');
            }
            all
        }
    }
}

/// Fails naming the value if any of `secrets` is stored in plaintext (or its hex).
async fn assert_nowhere_in_plaintext(database: Option<&str>, data_dir: &Path, secrets: &[&str]) {
    let all = everything_stored(database, data_dir).await.to_lowercase();
    assert!(!all.is_empty());
    for s in secrets {
        let s = s.to_lowercase();
        assert!(!all.contains(&s), "{s:?} is stored in plaintext");
        assert!(
            !all.contains(&hex(&s)),
            "{s:?} is stored in plaintext (hex)"
        );
    }
}

fn secrets() -> Vec<&'static str> {
    let mut s = vec![EMAIL];
    s.extend(ADDRESS.iter().map(|(_, v)| *v));
    s
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value, bool) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        replayed,
    )
}

async fn created_id(c: &reqwest::Client, url: String, body: Value) -> i64 {
    let (s, b, _) = send(c.post(url).json(&body)).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_i64().expect("id")
}

fn assert_address(order: &Value) {
    for (field, value) in ADDRESS {
        assert_eq!(order["shipping_address"][field], value, "{order}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_sealed_everywhere_and_sign_in_orders_and_replays_still_work() {
    let app = TestApp::spawn_configured(None, |c| {
        c.auth.jwt_secret = Some(allot_server::config::Secret::new("s".repeat(32)));
    })
    .await;
    let auth = &app.services.auth;
    auth.create_user(
        Email::parse(EMAIL).unwrap(),
        Password::parse(PASSWORD).unwrap(),
        Role::Customer,
    )
    .await
    .expect("the user is made");
    // Unique by the blind index of the normalised email: another spelling is the same email.
    let again = auth
        .create_user(
            Email::parse("grace.hopper@EXAMPLE.COM").unwrap(),
            Password::parse(PASSWORD).unwrap(),
            Role::Customer,
        )
        .await;
    assert!(matches!(again, Err(ServiceError::EmailTaken)), "{again:?}");

    let c = http();
    let base = app.url();
    let (s, b, _) = send(
        c.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "GRACE.HOPPER@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 200, "sign-in by email, in any case: {b}");
    assert!(b["access_token"].is_string(), "{b}");

    let product = created_id(
        &c,
        format!("{base}/api/v1/products"),
        json!({"sku": "PD-1", "name": "thing",
               "price": {"amount_minor": 500, "currency": "EUR"}}),
    )
    .await;
    let warehouse = created_id(
        &c,
        format!("{base}/api/v1/warehouses"),
        json!({"code": "PD", "name": "PD"}),
    )
    .await;
    let (s, b, _) = send(
        c.post(format!("{base}/api/v1/inventory/adjust"))
            .json(&json!({
        "product_id": product, "warehouse_id": warehouse, "mode": "set", "quantity": 10,
        "reason": "count"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, order, _) = send(
        c.post(format!("{base}/api/v1/orders"))
            .header("Idempotency-Key", "pd-order-1")
            .json(
                &json!({"customer": "grace", "shipping_address": address_json(),
                          "lines": [{"product_id": product, "quantity": 2}]}),
            ),
    )
    .await;
    assert_eq!(s, 201, "{order}");
    assert_address(&order);
    let id = order["id"].as_i64().unwrap();
    let (s, read, _) = send(c.get(format!("{base}/api/v1/orders/{id}"))).await;
    assert_eq!(s, 200, "{read}");
    assert_address(&read);
    let (s, listed, _) = send(c.get(format!("{base}/api/v1/orders?customer=grace"))).await;
    assert_eq!(s, 200, "{listed}");
    assert!(listed.to_string().contains(ADDRESS[1].1), "{listed}");
    // A stored idempotent answer holds the order, address and all: it is sealed too, and a
    // retry gets it back whole.
    let confirm = || {
        c.put(format!("{base}/api/v1/orders/{id}/status"))
            .header("Idempotency-Key", "pd-confirm-1")
            .json(&json!({"status": "confirmed"}))
    };
    let (s, first, replayed) = send(confirm()).await;
    assert_eq!((s, replayed), (200, false), "{first}");
    assert_address(&first);
    let (s, retry, replayed) = send(confirm()).await;
    assert_eq!((s, replayed), (200, true), "{retry}");
    assert_eq!(retry, first);

    assert_nowhere_in_plaintext(
        app.database.as_deref(),
        &app.data_dir.path().join("data"),
        &secrets(),
    )
    .await;
    app.stop().await;
}

/// Opens the store `config` names, as `allot serve` and `allot admin` do.
async fn open(config: &Config) -> Result<Arc<dyn Store>, AppError> {
    allot_server::open_store(config).await
}

fn refusal(opened: Result<Arc<dyn Store>, AppError>) -> String {
    match opened {
        Ok(_) => panic!("the store opened"),
        Err(AppError::Storage(e @ StorageError::DataKey(_))) => e.to_string(),
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

/// Where a test's store lives: a data directory, and a PostgreSQL cluster on PostgreSQL.
struct Place {
    dir: tempfile::TempDir,
    pg: Option<allot_testkit::PgCluster>,
}

impl Place {
    fn new() -> Place {
        Place {
            dir: tempfile::TempDir::new().unwrap(),
            pg: (backend() == "postgres").then(allot_testkit::PgCluster::start),
        }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn database(&self) -> Option<String> {
        self.pg.as_ref().map(|pg| pg.url())
    }

    fn config(&self, key: Option<DataKey>) -> Config {
        let mut config = Config::for_data_dir(self.data_dir());
        config.database = self.database();
        config.data_key = key;
        config
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_refuses_to_start_with_a_clear_error() {
    let place = Place::new();
    // The embedded database makes its own key when none is configured, readable by its owner
    // only; PostgreSQL, shared by instances, refuses to start without one.
    let first_key = match place.database() {
        Some(_) => {
            let why = refusal(open(&place.config(None)).await);
            assert!(why.contains("data key is required"), "{why}");
            Some(test_data_key())
        }
        None => None,
    };
    let store = open(&place.config(first_key.clone())).await.expect("opens");
    store
        .create_user(
            Email::parse(EMAIL).unwrap(),
            "hash".to_owned(),
            Role::Customer,
            UnixMillis::from_millis(1),
        )
        .await
        .unwrap()
        .expect("made");
    store.close().await.unwrap();
    drop(store);
    if place.database().is_none() {
        use std::os::unix::fs::PermissionsExt;
        let file = place.data_dir().join(allot_storage::crypto::DATA_KEY_FILE);
        let mode = std::fs::metadata(&file)
            .expect("data.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The kept key is used again: the same store opens and finds the user.
        let store = open(&place.config(None))
            .await
            .expect("opens with the kept key");
        let found = store
            .user_by_email(&Email::parse(EMAIL).unwrap())
            .await
            .unwrap();
        assert!(found.is_some());
        store.close().await.unwrap();
        drop(store);
    }
    let why = refusal(open(&place.config(Some(DataKey::generate()))).await);
    assert!(
        why.contains("not the key this database") && why.contains("key id"),
        "{why}"
    );
    // Nothing was changed by the refused start: the right key still opens it.
    let store = open(&place.config(first_key)).await.expect("opens again");
    store.close().await.unwrap();
}

/// Applies the migrations before personal data was sealed (1 to 12) and stores plaintext rows
/// the way that version did.
async fn write_an_old_database(place: &Place) {
    let old = allot_storage::migrations::MIGRATIONS
        .iter()
        .filter(|m| m.version < 13);
    let address = address_json().to_string();
    let body = json!({"id": 1, "shipping_address": address_json()}).to_string();
    match place.database() {
        None => {
            std::fs::create_dir_all(place.data_dir()).unwrap();
            let mut conn = rusqlite::Connection::open(allot_storage::SqliteStore::database_path(
                &place.data_dir(),
            ))
            .unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(
                "CREATE TABLE allot_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                                applied_at_ms INTEGER NOT NULL)",
            )
            .unwrap();
            for m in old {
                tx.execute_batch(m.sqlite).unwrap();
                tx.execute(
                    "INSERT INTO allot_migrations VALUES (?1, ?2, 0)",
                    rusqlite::params![m.version, m.name],
                )
                .unwrap();
            }
            tx.execute(
                "INSERT INTO users (email, password_hash, role, created_at_ms, updated_at_ms)
                 VALUES (?1, 'hash', 'customer', 1, 1)",
                [EMAIL.to_lowercase()],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO orders (customer, status, currency, shipping_address, subtotal_minor,
                                     total_minor, created_at_ms, updated_at_ms)
                 VALUES ('grace', 'pending', 'EUR', ?1, 0, 0, 1, 1)",
                [&address],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO idempotency_keys (key, method, path, request_hash, status,
                                               content_type, body, started_at_ms)
                 VALUES ('k1', 'PUT', '/api/v1/orders/1/status', 'h', 200, 'application/json',
                         ?1, 1)",
                [body.as_bytes()],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        Some(url) => {
            let mut client = allot_storage::postgres::connect(&url).await.unwrap();
            let tx = client.transaction().await.unwrap();
            tx.batch_execute(
                "CREATE TABLE allot_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                                                applied_at_ms BIGINT NOT NULL)",
            )
            .await
            .unwrap();
            for m in old {
                tx.batch_execute(m.postgres).await.unwrap();
                tx.execute(
                    "INSERT INTO allot_migrations VALUES ($1, $2, 0)",
                    &[&m.version, &m.name],
                )
                .await
                .unwrap();
            }
            tx.execute(
                "INSERT INTO users (email, password_hash, role, active, created_at_ms,
                                    updated_at_ms)
                 VALUES ($1, 'hash', 'customer', TRUE, 1, 1)",
                &[&EMAIL.to_lowercase()],
            )
            .await
            .unwrap();
            tx.execute(
                "INSERT INTO orders (customer, status, currency, shipping_address, subtotal_minor,
                                     total_minor, created_at_ms, updated_at_ms)
                 VALUES ('grace', 'pending', 'EUR', $1, 0, 0, 1, 1)",
                &[&address],
            )
            .await
            .unwrap();
            tx.execute(
                "INSERT INTO idempotency_keys (key, method, path, request_hash, status,
                                               content_type, body, started_at_ms)
                 VALUES ('k1', 'PUT', '/api/v1/orders/1/status', 'h', 200, 'application/json',
                         $1, 1)",
                &[&body.as_bytes()],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_written_before_encryption_is_sealed_when_opened() {
    let place = Place::new();
    write_an_old_database(&place).await;
    // The scan sees plaintext where there is some.
    let before = everything_stored(place.database().as_deref(), &place.data_dir())
        .await
        .to_lowercase();
    assert!(
        before.contains(&EMAIL.to_lowercase()) && before.contains(&ADDRESS[1].1.to_lowercase())
    );
    let key = Some(test_data_key());
    for _ in 0..2 {
        // Sealed at the first open; the second finds it sealed and changes nothing.
        let store = open(&place.config(key.clone())).await.expect("opens");
        let user = store
            .user_by_email(&Email::parse("GRACE.hopper@example.com").unwrap())
            .await
            .unwrap()
            .expect("found by its email");
        assert_eq!(user.email.as_str(), EMAIL.to_lowercase());
        let order = store.order(1).await.unwrap().expect("the order");
        let a = &order.shipping_address;
        let address = json!({
            "name": a.name, "line1": a.line1, "line2": a.line2, "city": a.city,
            "postal_code": a.postal_code, "country": a.country,
        });
        assert_eq!(address, address_json());
        let claim = store
            .claim_idempotency_key(
                IdempotencyScope {
                    // Kept from before keys had owners: the empty owner (migration 0016).
                    owner: String::new(),
                    key: "k1".to_owned(),
                    method: "PUT".to_owned(),
                    path: "/api/v1/orders/1/status".to_owned(),
                },
                "h".to_owned(),
                UnixMillis::from_millis(2),
                UnixMillis::from_millis(0),
            )
            .await
            .unwrap();
        let Claim::Completed(answer) = claim else {
            panic!("the stored answer: {claim:?}");
        };
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["shipping_address"], address_json());
        let taken = store
            .create_user(
                Email::parse("grace.HOPPER@example.com").unwrap(),
                "hash".to_owned(),
                Role::Customer,
                UnixMillis::from_millis(3),
            )
            .await
            .unwrap();
        assert!(taken.is_none(), "the sealed email is still unique");
        store.close().await.unwrap();
        assert_nowhere_in_plaintext(place.database().as_deref(), &place.data_dir(), &secrets())
            .await;
    }
}

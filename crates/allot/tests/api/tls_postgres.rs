//! PostgreSQL over TLS, against clusters that speak only TLS and admit only clients with a
//! certificate (`hostssl ... cert`), with certificates each test makes: `sslmode` as libpq,
//! refusals that name the host and the reason, at start and in `/ready`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use allot_testkit::{PgCluster, TestCa};
use serde_json::Value;

use crate::helpers::{TestApp, http};

/// A URL of `cluster` on `host` with these query parameters (the client certificate's, unless
/// `query` names its own), connecting to 127.0.0.1 whatever `host` says.
fn url(cluster: &PgCluster, host: &str, query: &str) -> String {
    format!(
        "postgres://allot@{host}:{}/postgres?hostaddr=127.0.0.1&{query}",
        cluster.port()
    )
}

/// `sslcert=...&sslkey=...` of the cluster's client certificate for `allot`.
fn client_cert(cluster: &PgCluster) -> String {
    let tls = cluster.tls().expect("a TLS cluster");
    format!(
        "sslcert={}&sslkey={}",
        tls.client_cert.display(),
        tls.client_key.display()
    )
}

async fn over_tls(db: &tokio_postgres::Client) -> bool {
    db.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// `allot serve` on `database`, run until it exits (it must, within 60 s): its status and
/// standard error.
fn serve_until_exit(database: &str) -> (std::process::ExitStatus, String) {
    let data = tempfile::TempDir::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--database", database])
        .env("ALLOT_DATA_KEY", allot_testkit::TEST_DATA_KEY)
        .env("ALLOT_JWT_SECRET", allot_testkit::TEST_JWT_SECRET)
        .env("ALLOT_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("allot starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("allot kept running on {database}: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_a_client_certificate_serves_over_tls() {
    let ca = TestCa::new("allot test CA");
    let cluster = PgCluster::start_tls(&ca);
    let database = cluster.url();
    assert!(database.contains("sslmode=verify-full"), "{database}");
    let app = TestApp::spawn_configured(None, {
        let database = database.clone();
        move |c| c.database = Some(database)
    })
    .await;
    let r = http()
        .post(format!("{}/api/v1/discount-codes/batches", app.url()))
        .json(&serde_json::json!({"count": 5, "length": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let ready: Value = http()
        .get(format!("{}/ready", app.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    let db = allot_storage::postgres::connect(&database).await.unwrap();
    assert!(over_tls(&db).await);
    let count: i64 = db
        .query_one("SELECT count(*) FROM discount_codes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5);
    // Every connection the server holds is encrypted: the cluster admits no other kind.
    let clear: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.backend_type = 'client backend' AND NOT s.ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(clear, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_refused_at_start_naming_the_host_and_the_reason() {
    let cluster = PgCluster::start_tls(&TestCa::new("the cluster's CA"));
    let other = TestCa::new("another CA");
    let database = url(
        &cluster,
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}&{}",
            other.ca_file().display(),
            client_cert(&cluster)
        ),
    );
    let (status, stderr) = serve_until_exit(&database);
    assert!(!status.success(), "{status}");
    assert!(
        stderr.contains(&format!(
            "TLS to localhost:{}: certificate not trusted (UnknownIssuer)",
            cluster.port()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_and_certificate_less_connections_are_refused_by_the_server() {
    let cluster = PgCluster::start_tls(&TestCa::new("allot test CA"));
    let tls = cluster.tls().unwrap().clone();
    let refused = allot_storage::postgres::connect(&url(
        &cluster,
        "localhost",
        &format!("sslmode=disable&{}", client_cert(&cluster)),
    ))
    .await
    .expect_err("cleartext refused")
    .to_string();
    assert!(
        refused.contains("no pg_hba.conf entry") && refused.contains("no encryption"),
        "{refused}"
    );
    let refused = allot_storage::postgres::connect(&url(
        &cluster,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", tls.ca.display()),
    ))
    .await
    .expect_err("no client certificate, refused")
    .to_string();
    assert!(
        refused.contains("connection requires a valid client certificate"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_without_a_ca_and_verify_ca_skips_the_name_verify_full_does_not() {
    let cluster = PgCluster::start_tls(&TestCa::new("allot test CA"));
    let tls = cluster.tls().unwrap().clone();
    let cert = client_cert(&cluster);

    // `require` without a root certificate: encrypted, the server not checked (as libpq).
    let db = allot_storage::postgres::connect(&url(
        &cluster,
        "localhost",
        &format!("sslmode=require&{cert}"),
    ))
    .await
    .expect("require connects without a CA");
    assert!(over_tls(&db).await);

    // A name the certificate does not carry (the server is reached at 127.0.0.1 anyway).
    let wrong = "db.example";
    let ca = tls.ca.display();
    let refused = allot_storage::postgres::connect(&url(
        &cluster,
        wrong,
        &format!("sslmode=verify-full&sslrootcert={ca}&{cert}"),
    ))
    .await
    .expect_err("verify-full checks the name")
    .to_string();
    assert!(
        refused.starts_with(&format!(
            "TLS to {wrong}:{}: certificate not valid for this host name",
            cluster.port()
        )),
        "{refused}"
    );
    let db = allot_storage::postgres::connect(&url(
        &cluster,
        wrong,
        &format!("sslmode=verify-ca&sslrootcert={ca}&{cert}"),
    ))
    .await
    .expect("verify-ca checks the chain only");
    assert!(over_tls(&db).await);

    // `verify-ca` still checks the chain; `require` given a root certificate does too.
    let other = TestCa::new("another CA");
    for mode in ["verify-ca", "require"] {
        let refused = allot_storage::postgres::connect(&url(
            &cluster,
            wrong,
            &format!(
                "sslmode={mode}&sslrootcert={}&{cert}",
                other.ca_file().display()
            ),
        ))
        .await
        .err()
        .unwrap_or_else(|| panic!("{mode} with another CA must refuse"))
        .to_string();
        assert!(
            refused.ends_with("certificate not trusted (UnknownIssuer)"),
            "{mode}: {refused}"
        );
    }
}

/// A password signed in over TLS with SCRAM is bound to the TLS session (SCRAM-SHA-256-PLUS,
/// `tls-server-end-point`): `channel_binding=require` signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_over_tls_is_bound_to_the_session() {
    let cluster = PgCluster::start_tls(&TestCa::new("allot test CA"));
    let admin = allot_storage::postgres::connect(&cluster.url())
        .await
        .unwrap();
    admin
        .batch_execute(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE app LOGIN PASSWORD 'app-password'",
        )
        .await
        .unwrap();
    cluster.set_hba(
        "local all all trust\nhostssl all app 127.0.0.1/32 scram-sha-256\n\
         hostssl all all 127.0.0.1/32 cert\n",
    );
    let tls = cluster.tls().unwrap();
    let db = allot_storage::postgres::connect(&format!(
        "postgres://app:app-password@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}\
         &channel_binding=require",
        cluster.port(),
        tls.ca.display()
    ))
    .await
    .expect("SCRAM with channel binding over TLS");
    assert!(over_tls(&db).await);
}

/// The database's certificate replaced by one no trusted CA signed (and the server restarted):
/// `/ready` says which host refused and why, and serves again once the certificate is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_after_a_restart_is_named_in_ready() {
    let ca = TestCa::new("allot test CA");
    let cluster = PgCluster::start_tls(&ca);
    let database = cluster.url();
    let app = TestApp::spawn_configured(None, move |c| c.database = Some(database)).await;
    let good = cluster.server_cert_files();
    let (good_cert, good_key) = (
        std::fs::read_to_string(&good.0).unwrap(),
        std::fs::read_to_string(&good.1).unwrap(),
    );
    let rogue = TestCa::new("a rogue CA").server_cert("rogue", &["localhost", "127.0.0.1"]);
    cluster.install_server_cert(&rogue);
    cluster.restart();

    let expected = format!(
        "TLS to localhost:{}: certificate not trusted (UnknownIssuer)",
        cluster.port()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http()
            .get(format!("{}/ready", app.url()))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if status == 503 && body["detail"] == expected.as_str() {
            assert_eq!(body["code"], "storage_unavailable", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut back = rogue.clone();
    back.cert_pem = good_cert;
    back.key_pem = good_key;
    cluster.install_server_cert(&back);
    cluster.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http()
            .get(format!("{}/ready", app.url()))
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

/// `--postgres-ca-file` and `--postgres-client-cert/-key` stand in for what the URL does not
/// say, and a URL parameter wins over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_supply_the_ca_and_client_certificate_and_the_url_wins() {
    use allot_storage::postgres::{PgTarget, PgTlsSettings};
    let cluster = PgCluster::start_tls(&TestCa::new("allot test CA"));
    let tls = cluster.tls().unwrap().clone();
    let settings = PgTlsSettings {
        ca_file: Some(tls.ca.clone()),
        client: Some(allot_storage::tls::ClientIdentity {
            cert: tls.client_cert.clone(),
            key: tls.client_key.clone(),
        }),
    };
    let bare = format!(
        "postgres://allot@localhost:{}/postgres?sslmode=verify-full",
        cluster.port()
    );
    let db = PgTarget::parse(&bare, &settings)
        .unwrap()
        .connect()
        .await
        .expect("the settings' CA and client certificate");
    assert!(over_tls(&db).await);

    let other = TestCa::new("another CA");
    let refused = PgTarget::parse(
        &format!("{bare}&sslrootcert={}", other.ca_file().display()),
        &settings,
    )
    .unwrap()
    .connect()
    .await
    .expect_err("the URL's root certificate wins")
    .to_string();
    assert!(refused.ends_with("(UnknownIssuer)"), "{refused}");
}

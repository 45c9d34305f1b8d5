//! TLS on the listener (issue 17): every transport over TLS with a client given the test's CA,
//! refusals without it, certificate rotation under load, a bad new pair kept out, the
//! cleartext probe listener, slow handshakes dropped, and `allot admin gen-cert`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};
use allot_testkit::{CertFiles, TestCa};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::helpers::{ADMIN_KEY, AdminKey, ProcessBackend, TestApp};

const HOSTS: &[&str] = &["localhost", "127.0.0.1"];

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTP client sending the harness admin key that trusts `ca` (and nothing else).
fn https_client(ca: &TestCa) -> reqwest::ClientBuilder {
    trusting(ca.ca_pem())
}

fn trusting(ca_pem: &str) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", ADMIN_KEY.parse().expect("ASCII key"));
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
}

/// A gRPC channel over TLS to `addr`, trusting `ca_pem`, sending the harness admin key.
async fn grpc_tls(
    addr: SocketAddr,
    ca_pem: Option<&str>,
) -> Result<InterceptedService<tonic::transport::Channel, AdminKey>, String> {
    let mut tls = ClientTlsConfig::new();
    if let Some(pem) = ca_pem {
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| chain(&e))?;
    Ok(InterceptedService::new(channel, AdminKey))
}

/// An error with all its causes: where TLS puts the reason (`UnknownIssuer`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

fn serial_of_der(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .expect("an X.509 certificate")
        .1
        .raw_serial_as_string()
}

fn serial_of(files: &CertFiles) -> String {
    let der = CertificateDer::from_pem_slice(files.cert_pem.as_bytes()).expect("PEM");
    serial_of_der(der.as_ref())
}

/// The serial of the certificate a fresh handshake with `addr` is given (verified with `ca`).
async fn served_serial(addr: SocketAddr, ca_pem: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
        .expect("CA added");
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the CA");
    let der = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
    serial_of_der(der.as_ref())
}

/// Waits up to `within` until new handshakes present `serial`.
async fn wait_for_serial(addr: SocketAddr, ca_pem: &str, serial: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let served = served_serial(addr, ca_pem).await;
        if served == serial {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still serving {served}, not {serial}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `new`'s certificate and key in place of `at`'s files, each by a rename, so that the
/// server never reads half a file (as certbot and cert-manager do).
fn install(new: &CertFiles, at: &CertFiles) {
    for (from, to) in [(&new.key_pem, &at.key), (&new.cert_pem, &at.cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::write(&tmp, from).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discount_grpc_contract_works_over_tls_and_a_client_without_the_ca_is_refused() {
    let ca = TestCa::new("allot grpc test CA");
    let cert = ca.server_cert("server", HOSTS);
    let app = TestApp::spawn_tls(&cert, |_| {}).await;

    let mut client = DiscountClient::new(grpc_tls(app.addr, Some(ca.ca_pem())).await.unwrap());
    let generated = client
        .generate(GenerateRequest {
            count: 20,
            length: vec![8],
        })
        .await
        .expect("Generate over TLS")
        .into_inner();
    assert!(generated.result);
    assert_eq!(generated.codes.len(), 20);
    let code = generated.codes[0].clone();
    let used = |code: String| {
        let mut client = client.clone();
        async move {
            client
                .use_code(UseCodeRequest { code })
                .await
                .expect("UseCode over TLS")
                .into_inner()
                .result
        }
    };
    assert_eq!(used(code.clone()).await, [0], "used now");
    assert_eq!(used(code.clone()).await, [2], "already used");

    // A client that does not trust the CA is refused by its own TLS, and says why.
    let refused = grpc_tls(app.addr, None)
        .await
        .expect_err("untrusted server");
    assert!(
        refused.contains("UnknownIssuer"),
        "the refusal names the reason: {refused}"
    );
    // Cleartext gRPC to the TLS port gets nothing.
    let cleartext = Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("TCP connects");
    let answer = DiscountClient::new(cleartext)
        .generate(GenerateRequest {
            count: 1,
            length: vec![8],
        })
        .await;
    assert!(answer.is_err(), "cleartext gRPC was served: {answer:?}");

    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM discount_codes").await, 20);
    assert_eq!(
        db.count("SELECT count(*) FROM discount_codes WHERE used_at_ms IS NOT NULL")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_works_over_tls_on_http1_and_http2_chosen_by_alpn() {
    let ca = TestCa::new("allot rest test CA");
    let cert = ca.server_cert("server", HOSTS);
    let app = TestApp::spawn_tls(&cert, |_| {}).await;
    let base = app.https_url();

    let created: Value = https_client(&ca)
        .build()
        .unwrap()
        .post(format!("{base}/api/v1/campaigns"))
        .json(&json!({"name": "tls", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 10}))
        .send()
        .await
        .expect("REST over TLS")
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().expect("campaign id");

    let mut codes = Vec::new();
    for (client, version) in [
        (https_client(&ca).http1_only(), reqwest::Version::HTTP_11),
        (https_client(&ca), reqwest::Version::HTTP_2),
    ] {
        let client = client.build().unwrap();
        for _ in 0..3 {
            let r = client
                .post(format!("{base}/api/v1/campaigns/{id}/coupons"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.version(), version, "ALPN chose the protocol");
            assert_eq!(r.status(), 201);
            let body: Value = r.json().await.unwrap();
            codes.push(body["code"].as_str().unwrap().to_owned());
        }
        // The console too: a page over TLS.
        let page = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("<html"));
    }

    // Untrusted: refused by the client's TLS with the reason; cleartext: no HTTP answer.
    let untrusted = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
        .get(format!("{base}/health"))
        .send()
        .await
        .expect_err("an untrusted certificate");
    let reason = chain(&untrusted);
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    let cleartext = reqwest::Client::new()
        .get(format!("{}/health", app.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(cleartext.is_err(), "cleartext was answered: {cleartext:?}");

    let db = app.db().await;
    assert_eq!(
        db.count(&format!("SELECT issued FROM campaigns WHERE id = {id}"))
            .await,
        6
    );
    let mut stored = db
        .strings(&format!(
            "SELECT code FROM campaign_coupons WHERE campaign_id = {id}"
        ))
        .await;
    stored.sort();
    codes.sort();
    assert_eq!(stored, codes, "exactly the codes answered were stored");
    app.stop().await;
}

/// Where scripts/connect-client.sh installs connect-es and the generated campaign code.
fn connect_client_dir() -> std::path::PathBuf {
    std::env::var_os("ALLOT_CONNECT_CLIENT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/connect-client"),
        std::path::PathBuf::from,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_connect_client_issues_campaign_coupons_over_tls_on_its_three_transports() {
    let client_dir = connect_client_dir();
    let script = client_dir.join("issue.mjs");
    assert!(
        client_dir.join("gen/coupon_pb.js").is_file() && script.is_file(),
        "connect-es not found in {}: run scripts/connect-client.sh (or set \
         ALLOT_CONNECT_CLIENT to its directory)",
        client_dir.display()
    );
    let ca = TestCa::new("allot connect test CA");
    let cert = ca.server_cert("server", HOSTS);
    let app = TestApp::spawn_tls(&cert, |_| {}).await;
    let base = app.https_url();
    let id = create_campaign(&https_client(&ca).build().unwrap(), &base, 100).await;

    const PER_TRANSPORT: usize = 4;
    let ran = tokio::process::Command::new("node")
        .arg(&script)
        .args([
            base.as_str(),
            ca.ca_file().to_str().unwrap(),
            ADMIN_KEY.as_str(),
            &id.to_string(),
            &PER_TRANSPORT.to_string(),
        ])
        .current_dir(&client_dir)
        .kill_on_drop(true)
        .output();
    let ran = tokio::time::timeout(Duration::from_secs(60), ran)
        .await
        .expect("the Connect client finished within a minute")
        .expect("node runs");
    assert!(
        ran.status.success(),
        "the Connect client failed: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let issued: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&ran.stdout).expect("the client prints JSON");
    let names: Vec<&str> = issued.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["connect-binary-http2", "connect-json-http1.1", "grpc"]
    );
    let mut told: Vec<String> = Vec::new();
    for (transport, codes) in &issued {
        assert_eq!(codes.len(), PER_TRANSPORT, "{transport}: {codes:?}");
        told.extend(codes.iter().cloned());
    }

    // Exactly the codes the client was told, no more, no fewer, none twice.
    let db = app.db().await;
    let mut stored = db
        .strings(&format!(
            "SELECT code FROM campaign_coupons WHERE campaign_id = {id}"
        ))
        .await;
    stored.sort();
    told.sort();
    assert_eq!(stored, told);
    assert_eq!(
        db.count(&format!("SELECT issued FROM campaigns WHERE id = {id}"))
            .await,
        3 * PER_TRANSPORT as i64
    );
    app.stop().await;
}

/// Clients issue coupons without pause, a fresh client (a new connection, a new handshake)
/// every few requests, while the certificate is replaced. Answers how many were issued and
/// every failure.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

const LOAD_CLIENTS: usize = 6;
/// Requests per client before it is replaced by a fresh one (a new TLS handshake).
const REQUESTS_PER_CLIENT: usize = 5;

impl Load {
    fn start(ca: &TestCa, base: String, campaign: i64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let tasks = (0..LOAD_CLIENTS)
            .map(|i| {
                let ca_pem = ca.ca_pem().to_owned();
                // Half the clients on HTTP/1.1, half on HTTP/2.
                let http1 = i % 2 == 0;
                let (stop, ok, base) = (stop.clone(), ok.clone(), base.clone());
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let mut b = trusting(&ca_pem);
                        if http1 {
                            b = b.http1_only();
                        }
                        let client = b.build().unwrap();
                        for _ in 0..REQUESTS_PER_CLIENT {
                            match client
                                .post(format!("{base}/api/v1/campaigns/{campaign}/coupons"))
                                .send()
                                .await
                            {
                                Ok(r) if r.status() == 201 => {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(r) => failures.push(format!("status {}", r.status())),
                                Err(e) => failures.push(chain(&e)),
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        Load { stop, ok, tasks }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for t in self.tasks {
            failures.extend(t.await.expect("load task"));
        }
        (self.ok.load(Ordering::Relaxed), failures)
    }

    /// Waits until `more` requests succeeded since the call.
    async fn wait_for(&self, more: u64) {
        let target = self.ok.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ok.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn create_campaign(client: &reqwest::Client, base: &str, total: i64) -> i64 {
    let created: Value = client
        .post(format!("{base}/api/v1/campaigns"))
        .json(&json!({"name": "rotation", "start_time": "2020-01-01T00:00:00Z", "total_coupons": total}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_i64().expect("campaign id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_failed_request_when_its_files_change() {
    let ca = TestCa::new("allot rotation test CA");
    let first = ca.server_cert("server", HOSTS);
    let second = ca.server_cert("renewed", HOSTS);
    assert_ne!(serial_of(&first), serial_of(&second));
    let app = TestApp::spawn_tls(&first, |_| {}).await;
    let base = app.https_url();
    let id = create_campaign(&https_client(&ca).build().unwrap(), &base, 1_000_000).await;
    assert_eq!(
        served_serial(app.addr, ca.ca_pem()).await,
        serial_of(&first)
    );

    let load = Load::start(&ca, base.clone(), id);
    load.wait_for(50).await;
    install(&second, &first);
    // Picked up by the file watch (every 2 s), no signal.
    wait_for_serial(
        app.addr,
        ca.ca_pem(),
        &serial_of(&second),
        Duration::from_secs(10),
    )
    .await;
    load.wait_for(50).await;
    let (ok, failures) = load.finish().await;
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    let db = app.db().await;
    assert_eq!(
        db.count(&format!("SELECT issued FROM campaigns WHERE id = {id}"))
            .await as u64,
        ok,
        "every answered issue was stored, and nothing else"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_of_a_running_server_under_load() {
    let ca = TestCa::new("allot sighup test CA");
    let first = ca.server_cert("server", HOSTS);
    let second = ca.server_cert("renewed", HOSTS);
    let backend = ProcessBackend::new();
    let server = backend.start_with(&[
        "--tls-cert",
        first.cert.to_str().unwrap(),
        "--tls-key",
        first.key.to_str().unwrap(),
    ]);
    let base = server.https_url();
    let health: Value = https_client(&ca)
        .build()
        .unwrap()
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health over TLS")
        .json()
        .await
        .unwrap();
    let expected = if backend.database().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(health["storage"]["backend"], expected);
    let id = create_campaign(&https_client(&ca).build().unwrap(), &base, 1_000_000).await;

    let load = Load::start(&ca, base.clone(), id);
    load.wait_for(50).await;
    // New content under the old modification times: only the signal can make it seen.
    let mtimes: Vec<_> = [&first.cert, &first.key]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    for (path, pem, mtime) in [
        (&first.key, &second.key_pem, mtimes[1]),
        (&first.cert, &second.cert_pem, mtimes[0]),
    ] {
        std::fs::write(path, pem).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        served_serial(server.addr, ca.ca_pem()).await,
        serial_of(&first),
        "without a signal or a newer file, the certificate stays"
    );
    server.signal("HUP");
    wait_for_serial(
        server.addr,
        ca.ca_pem(),
        &serial_of(&second),
        Duration::from_secs(5),
    )
    .await;
    load.wait_for(50).await;
    let (ok, failures) = load.finish().await;
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let db = backend.db().await;
    assert_eq!(
        db.count(&format!("SELECT issued FROM campaigns WHERE id = {id}"))
            .await as u64,
        ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_new_pair_is_not_served_and_the_old_certificate_stays() {
    let ca = TestCa::new("allot bad pair test CA");
    let first = ca.server_cert("server", HOSTS);
    let other = ca.server_cert("other", HOSTS);
    let fixed = ca.server_cert("fixed", HOSTS);
    let app = TestApp::spawn_tls(&first, |_| {}).await;
    let client = https_client(&ca).build().unwrap();
    let health = format!("{}/health", app.https_url());

    // Another certificate's key: the pair does not match.
    std::fs::write(&first.key, &other.key_pem).unwrap();
    // Two looks of the watcher.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(
        served_serial(app.addr, ca.ca_pem()).await,
        serial_of(&first)
    );
    assert_eq!(client.get(&health).send().await.unwrap().status(), 200);
    // Not PEM at all.
    std::fs::write(&first.cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(
        served_serial(app.addr, ca.ca_pem()).await,
        serial_of(&first)
    );
    assert_eq!(client.get(&health).send().await.unwrap().status(), 200);

    // A good pair afterwards is taken: the watcher was looking all along.
    install(&fixed, &first);
    wait_for_serial(
        app.addr,
        ca.ca_pem(),
        &serial_of(&fixed),
        Duration::from_secs(10),
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_that_does_not_load_stops_the_start_with_the_file_named() {
    let ca = TestCa::new("allot start test CA");
    let cert = ca.server_cert("server", HOSTS);
    let other = ca.server_cert("other", HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let build = |cert_path: &Path, key_path: &Path| {
        let mut config = allot_server::Config::for_data_dir(dir.path().join("data"));
        config.tls = Some(allot_server::tls::TlsSettings {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        });
        async move {
            match allot_server::Application::build(
                config,
                Arc::new(allot_server::clock::SystemClock),
            )
            .await
            {
                Ok(_) => panic!("the server started with a bad pair"),
                Err(e) => e.to_string(),
            }
        }
    };
    let mismatch = build(&cert.cert, &other.key).await;
    assert!(
        mismatch.contains(&other.key.display().to_string()) && mismatch.contains("does not belong"),
        "{mismatch}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let not_pem = build(&garbage, &cert.key).await;
    assert!(
        not_pem.contains(&garbage.display().to_string()) && not_pem.contains("no certificate"),
        "{not_pem}"
    );
    let no_key = build(&cert.cert, &garbage).await;
    assert!(
        no_key.contains(&garbage.display().to_string()) && no_key.contains("private key"),
        "{no_key}"
    );
    // Half the setting, through the flags: refused before anything opens.
    let half = allot_server::ServeArgs {
        tls_cert: Some(cert.cert.clone()),
        ..Default::default()
    }
    .resolve()
    .expect_err("a certificate without a key");
    assert!(half.to_string().contains("tls_key"), "{half}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_probe_listener_answers_health_and_metrics_only() {
    let ca = TestCa::new("allot probe test CA");
    let cert = ca.server_cert("server", HOSTS);
    let app = TestApp::spawn_tls(&cert, |c| {
        c.plain_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let probes = format!("http://{}", app.probe_addr.expect("a probe listener"));
    let plain = crate::helpers::http();
    for path in ["/health", "/ready", "/metrics"] {
        let r = plain.get(format!("{probes}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} in clear");
    }
    let metrics = plain
        .get(format!("{probes}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("allot_tls_certificate_not_after_timestamp_seconds"),
        "the certificate's expiry is a metric"
    );
    // The harness admin key does not open anything else in clear.
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/campaigns"),
        (reqwest::Method::POST, "/api/v1/discount-codes/batches"),
        (reqwest::Method::GET, "/console/campaigns"),
    ] {
        let r = plain
            .request(method, format!("{probes}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} on the probe listener");
    }
    // The API is on the TLS port.
    let r = https_client(&ca)
        .build()
        .unwrap()
        .get(format!("{}/api/v1/campaigns", app.https_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

/// True when the server closed the connection within `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_not_finished_within_the_header_read_timeout_is_dropped() {
    let ca = TestCa::new("allot slow handshake test CA");
    let cert = ca.server_cert("server", HOSTS);
    let app = TestApp::spawn_tls(&cert, |c| {
        c.connections.header_read_timeout = Duration::from_millis(500);
        // One slot: a stuck handshake would hold the whole server.
        c.connections.connections_max = 1;
    })
    .await;
    // Silent after connecting.
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The first bytes of a ClientHello, then nothing.
    let mut partial = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(closed_within(&mut partial, Duration::from_secs(5)).await);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The slot is free again: a real client is served.
    let r = https_client(&ca)
        .build()
        .unwrap()
        .get(format!("{}/health", app.https_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

fn allot(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .output()
        .expect("allot runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_cert_writes_a_pair_the_server_starts_with_and_the_tools_trust() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("tls");
    let dir_arg = dir.to_str().unwrap();
    let made = allot(&[
        "admin",
        "gen-cert",
        "--hosts",
        "localhost,127.0.0.1",
        "--out-dir",
        dir_arg,
        "--days",
        "30",
    ]);
    assert!(made.status.success(), "{made:?}");
    let printed = String::from_utf8_lossy(&made.stdout);
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    assert!(
        printed.contains(&format!(
            "--tls-cert {} --tls-key {}",
            cert.display(),
            key.display()
        )),
        "prints the serve flags: {printed}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is readable by its owner only");
    }
    let before = std::fs::read(&cert).unwrap();
    let again = allot(&[
        "admin",
        "gen-cert",
        "--hosts",
        "localhost",
        "--out-dir",
        dir_arg,
    ]);
    assert!(!again.status.success(), "overwrote without --force");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        before,
        "the pair is untouched"
    );

    let backend = ProcessBackend::new();
    let server = backend.start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    // The first-run setup link is an https one.
    let setup = server.stdout_line("setup: open ", Duration::from_secs(10));
    assert!(
        setup.starts_with(&format!("setup: open https://{}/setup?token=", server.addr)),
        "{setup}"
    );
    // A client that trusts cert.pem (and nothing else) connects, by name and by address.
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&before).unwrap())
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let r = trusting
            .get(format!("https://{host}:{}/health", server.addr.port()))
            .send()
            .await
            .expect("a client trusting cert.pem connects");
        assert_eq!(r.status(), 200);
    }
    // The tools, over gRPC: `allot codes` with --ca-file.
    let url = server.https_url();
    let codes = allot(&[
        "--ca-file",
        cert.to_str().unwrap(),
        "--api-key",
        &ADMIN_KEY,
        "codes",
        "generate",
        "--count",
        "3",
        "--server",
        &url,
    ]);
    assert!(codes.status.success(), "{codes:?}");
    assert_eq!(String::from_utf8_lossy(&codes.stdout).lines().count(), 3);
    // Without it, refused with the reason.
    let refused = allot(&[
        "--api-key",
        &ADMIN_KEY,
        "codes",
        "generate",
        "--count",
        "1",
        "--server",
        &url,
    ]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("UnknownIssuer"), "{why}");
    // And REST: the admin client of `allot admin`.
    let users = allot(&[
        "--ca-file",
        cert.to_str().unwrap(),
        "--api-key",
        &ADMIN_KEY,
        "admin",
        "list-users",
        "--server",
        &url,
    ]);
    assert!(users.status.success(), "{users:?}");
    assert_eq!(
        backend
            .db()
            .await
            .count("SELECT count(*) FROM discount_codes")
            .await,
        3
    );
}

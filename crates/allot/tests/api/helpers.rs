//! Test harness: in-process servers (fast, with an injectable clock) and server processes (for
//! restarts and SIGKILL), each on its own port and its own fresh data directory, and on a
//! PostgreSQL cluster of its own when the suite runs on PostgreSQL (`ALLOT_TEST_BACKEND`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::Duration;

use allot_domain::{Clock, UnixMillis};
use allot_server::clock::{ManualClock, SystemClock};
use allot_server::pb::couponpb::CreateCampaignRequest;
use allot_server::pb::couponpb::coupon_service_client::CouponServiceClient;
use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::{Application, Config};
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// The admin API key of every server the harness starts (made once per test run, stored in
/// each server's database as a hash before it serves). [`http`], [`channel`] and the clients
/// built on them send it, so a test acts as an admin unless it sends its own credential
/// (`Authorization` wins over `X-Api-Key`) or uses [`anonymous`] or [`raw_channel`].
pub static ADMIN_KEY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("ak_harness{:032x}", rand::random::<u128>()));

/// Stores [`ADMIN_KEY`] in `store` (idempotent).
pub async fn register_admin_key(auth: &allot_server::service::Auth) {
    auth.register_api_key(
        "test harness admin",
        &ADMIN_KEY,
        allot_domain::auth::Role::Admin,
    )
    .await
    .expect("the harness admin key is stored");
}

/// Adds [`ADMIN_KEY`] to every gRPC call that carries no credential of its own.
#[derive(Clone)]
pub struct AdminKey;

impl tonic::service::Interceptor for AdminKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let md = request.metadata_mut();
        if !md.contains_key("authorization") && !md.contains_key("x-api-key") {
            md.insert("x-api-key", ADMIN_KEY.parse().expect("ASCII key"));
        }
        Ok(request)
    }
}

/// A gRPC channel that sends the harness admin key.
pub type GrpcChannel = InterceptedService<Channel, AdminKey>;

/// Logs stay quiet unless `TEST_LOG=1`.
fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            std::mem::forget(allot_server::telemetry::init(
                allot_server::LogFormat::Pretty,
                "info",
            ));
        }
    });
}

/// A server running inside the test process.
pub struct TestApp {
    pub addr: SocketAddr,
    pub data_dir: TempDir,
    /// The PostgreSQL cluster of this server, when the suite runs on PostgreSQL.
    pub pg: Option<allot_testkit::PgCluster>,
    /// The PostgreSQL URL the server runs on, if any.
    pub database: Option<String>,
    pub clock: Option<Arc<ManualClock>>,
    /// The running server's services, to set up state the API cannot (users, API keys).
    pub services: allot_server::service::Services,
    /// The running server's rate limiters, to look at their sizes.
    pub rate_limits: Arc<allot_server::rate_limit::RateLimits>,
    /// The first-run setup link the server made (none when an admin existed at start).
    pub setup_url: Option<String>,
    /// The cleartext probe listener's address, when one is configured.
    pub probe_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_inner(Arc::new(SystemClock), None).await
    }

    /// A server whose clock stands at `now` until the test moves it.
    pub async fn spawn_with_clock(now: UnixMillis) -> TestApp {
        let clock = Arc::new(ManualClock::new(now));
        Self::spawn_inner(clock.clone(), Some(clock)).await
    }

    /// A server with settings changed by `configure`, and a manual clock at `now` if given.
    pub async fn spawn_configured(
        now: Option<UnixMillis>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let manual = now.map(|n| Arc::new(ManualClock::new(n)));
        let clock: Arc<dyn Clock> = match &manual {
            Some(m) => m.clone(),
            None => Arc::new(SystemClock),
        };
        Self::spawn_with(clock, manual, configure).await
    }

    async fn spawn_inner(clock: Arc<dyn Clock>, manual: Option<Arc<ManualClock>>) -> TestApp {
        Self::spawn_with(clock, manual, |_| {}).await
    }

    /// A server on the PostgreSQL database at `database`, or on SQLite if `None`, whatever
    /// the suite's backend, with a manual clock at `now` and settings changed by `configure`
    /// (for tests that run both backends side by side).
    pub async fn spawn_on(
        database: Option<String>,
        now: UnixMillis,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let clock = Arc::new(ManualClock::new(now));
        Self::spawn_at(None, database, clock.clone(), Some(clock), configure).await
    }

    /// A server on the PostgreSQL database at `database` (one more instance on a shared
    /// database), or on SQLite if `None`, with the system clock and settings changed by
    /// `configure`; starts no cluster of its own.
    pub async fn spawn_sharing(
        database: Option<String>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        Self::spawn_at(None, database, Arc::new(SystemClock), None, configure).await
    }

    async fn spawn_with(
        clock: Arc<dyn Clock>,
        manual: Option<Arc<ManualClock>>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let pg = (backend() == "postgres").then(allot_testkit::PgCluster::start);
        let database = pg.as_ref().map(|pg| pg.url());
        Self::spawn_at(pg, database, clock, manual, configure).await
    }

    async fn spawn_at(
        pg: Option<allot_testkit::PgCluster>,
        database: Option<String>,
        clock: Arc<dyn Clock>,
        manual: Option<Arc<ManualClock>>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        init_logs();
        let data_dir = TempDir::new().expect("temp dir");
        let mut config = Config::for_data_dir(data_dir.path().join("data"));
        config.database = database;
        // The suite drives thousands of code uses and sign-ins from one address: limits off,
        // except in the tests of the limits themselves (`configure`).
        config.rate_limits = allot_server::rate_limit::RateLimitSettings::OFF;
        configure(&mut config);
        // PostgreSQL (the suite's, or a test's own cluster) needs the key; SQLite makes one.
        if config.database.is_some() && config.data_key.is_none() {
            config.data_key = Some(test_data_key());
        }
        // ... and a signing secret shared by every instance (refused to start without).
        if config.database.is_some() && config.auth.jwt_secret.is_none() {
            config.auth.jwt_secret = Some(allot_server::config::Secret::new(
                allot_testkit::TEST_JWT_SECRET,
            ));
        }
        let database = config.database.clone();
        let app = Application::build(config, clock)
            .await
            .expect("server builds");
        let addr = app.local_addr();
        let services = app.services().clone();
        let rate_limits = app.rate_limits();
        let setup_url = app.setup_url();
        let probe_addr = app.probe_addr();
        register_admin_key(&services.auth).await;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
            .expect("server runs and stops cleanly");
        });
        TestApp {
            addr,
            data_dir,
            pg,
            database,
            clock: manual,
            services,
            rate_limits,
            setup_url,
            probe_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of a server started with TLS (its certificate names 127.0.0.1).
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A server whose port speaks TLS only, with `cert`, and settings changed by `configure`.
    pub async fn spawn_tls(
        cert: &allot_testkit::CertFiles,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let settings = allot_server::tls::TlsSettings {
            cert: cert.cert.clone(),
            key: cert.key.clone(),
        };
        Self::spawn_configured(None, move |config| {
            config.tls = Some(settings);
            configure(config);
        })
        .await
    }

    pub async fn channel(&self) -> GrpcChannel {
        channel(self.addr).await
    }

    pub async fn discount(&self) -> DiscountClient<GrpcChannel> {
        DiscountClient::new(self.channel().await)
    }

    /// The server's database, whichever backend it runs on.
    pub async fn db(&self) -> AppDb {
        AppDb::open(self.database.as_deref(), &self.data_dir.path().join("data")).await
    }

    /// Graceful stop: in-flight requests finish and storage is flushed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// A gRPC channel to `addr` that sends the harness admin key with every call.
pub async fn channel(addr: SocketAddr) -> GrpcChannel {
    InterceptedService::new(raw_channel(addr).await, AdminKey)
}

/// A gRPC channel to `addr` that sends no credential.
pub async fn raw_channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("gRPC connects")
}

/// `n` independent HTTP/2 connections, to spread load the way many clients would.
pub async fn channels(addr: SocketAddr, n: usize) -> Vec<GrpcChannel> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(channel(addr).await);
    }
    out
}

/// An HTTP client that sends the harness admin key ([`ADMIN_KEY`]) unless a request sets
/// `X-Api-Key` or `Authorization` itself.
pub fn http() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", ADMIN_KEY.parse().expect("ASCII key"));
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A client builder whose clients send the harness admin key ([`ADMIN_KEY`]), for tests that
/// need other client settings (HTTP/2 only, pools, timeouts).
pub fn client_builder() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", ADMIN_KEY.parse().expect("ASCII key"));
    reqwest::Client::builder().default_headers(headers)
}

/// A browser at the console: no credential of its own (the session cookie is sent by each
/// test), redirects not followed (the tests look at them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An HTTP client that sends no credential.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The harness's fixed data key: required on PostgreSQL; on SQLite the data directory's
/// generated key is used unless a test sets this one.
pub fn test_data_key() -> allot_storage::crypto::DataKey {
    allot_storage::crypto::DataKey::parse(allot_testkit::TEST_DATA_KEY)
        .expect("the test key parses")
}

/// The backend the suite runs on: `sqlite` (default) or `postgres` (`ALLOT_TEST_BACKEND`).
pub fn backend() -> String {
    std::env::var("ALLOT_TEST_BACKEND").unwrap_or_else(|_| "sqlite".to_owned())
}

/// A server's database on either backend, for checking invariants behind the API.
pub enum AppDb {
    Sqlite(Db),
    Postgres(tokio_postgres::Client),
}

impl AppDb {
    /// The PostgreSQL database at `database` if given, else the SQLite one in `data_dir`.
    pub async fn open(database: Option<&str>, data_dir: &Path) -> AppDb {
        match database {
            Some(url) => AppDb::Postgres(
                allot_storage::postgres::connect(url)
                    .await
                    .expect("postgres connects"),
            ),
            None => AppDb::Sqlite(Db::open(data_dir)),
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            AppDb::Sqlite(db) => db.count(sql),
            AppDb::Postgres(client) => {
                let row = client.query_one(sql, &[]).await.expect(sql);
                row.try_get::<_, i64>(0)
                    .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                    .expect(sql)
            }
        }
    }

    /// The reads that follow, until [`Self::end_snapshot`], see one moment of the database
    /// (a job may write between two of them otherwise).
    pub async fn begin_snapshot(&self) {
        match self {
            AppDb::Sqlite(db) => db.0.execute_batch("BEGIN").expect("BEGIN"),
            AppDb::Postgres(client) => client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .expect("BEGIN"),
        }
    }

    pub async fn end_snapshot(&self) {
        match self {
            AppDb::Sqlite(db) => db.0.execute_batch("COMMIT").expect("COMMIT"),
            AppDb::Postgres(client) => client.batch_execute("COMMIT").await.expect("COMMIT"),
        }
    }

    pub async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            AppDb::Sqlite(db) => db.strings(sql),
            AppDb::Postgres(client) => client
                .query(sql, &[])
                .await
                .expect(sql)
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect(),
        }
    }
}

/// Read-only access to a SQLite data directory, for checking invariants behind the API.
pub struct Db(Connection);

impl Db {
    pub fn open(data_dir: &Path) -> Db {
        let path = allot_storage::SqliteStore::database_path(data_dir);
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("database opens");
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        Db(conn)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.0.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    pub fn strings(&self, sql: &str) -> Vec<String> {
        let mut stmt = self.0.prepare(sql).expect(sql);
        stmt.query_map([], |r| r.get(0))
            .expect(sql)
            .map(|r| r.expect(sql))
            .collect()
    }
}

/// The storage of a server-process test, kept across every restart and crash of the `allot`
/// process: a data directory and, when the suite runs on PostgreSQL, a cluster of its own that
/// keeps running while `allot` restarts. Declare it before the servers it starts, so that they
/// are killed before the cluster stops when the test ends.
pub struct ProcessBackend {
    /// The `--data-dir` of every server started (the SQLite database, unless on PostgreSQL).
    pub data_dir: PathBuf,
    _dir: TempDir,
    pg: Option<allot_testkit::PgCluster>,
}

impl ProcessBackend {
    /// On the suite's backend ([`backend`]).
    pub fn new() -> ProcessBackend {
        let pg = (backend() == "postgres").then(allot_testkit::PgCluster::start);
        Self::with(pg)
    }

    /// On SQLite whatever the suite's backend, for tests of SQLite itself (its files, backups).
    pub fn sqlite() -> ProcessBackend {
        Self::with(None)
    }

    fn with(pg: Option<allot_testkit::PgCluster>) -> ProcessBackend {
        let dir = TempDir::new().expect("temp dir");
        ProcessBackend {
            data_dir: dir.path().join("data"),
            _dir: dir,
            pg,
        }
    }

    /// The PostgreSQL URL the servers run on, if any.
    pub fn database(&self) -> Option<String> {
        self.pg.as_ref().map(|pg| pg.url())
    }

    /// Starts `allot serve` on this storage and waits until it listens.
    pub fn start(&self) -> ServerProcess {
        self.start_with(&[])
    }

    /// Like [`Self::start`], with more `allot serve` flags.
    pub fn start_with(&self, flags: &[&str]) -> ServerProcess {
        self.start_inner(flags, None)
    }

    /// Like [`Self::start`], its log kept in `log` (level info).
    pub fn start_logging_to(&self, log: &Path) -> ServerProcess {
        self.start_inner(&[], Some(log))
    }

    /// Like [`Self::start_with`], listening on `listen` (e.g. a fixed port an original
    /// client dials) instead of a random port.
    pub fn start_on(&self, listen: &str, flags: &[&str]) -> ServerProcess {
        let mut all = vec!["--listen", listen];
        all.extend(flags);
        self.start_inner(&all, None)
    }

    /// Like [`Self::start_with`], its log kept in `log` (level info).
    pub fn start_with_logging_to(&self, flags: &[&str], log: &Path) -> ServerProcess {
        self.start_inner(flags, Some(log))
    }

    fn start_inner(&self, flags: &[&str], log: Option<&Path>) -> ServerProcess {
        let mut all: Vec<&str> = Vec::with_capacity(flags.len() + 2);
        let database = self.database();
        if let Some(url) = &database {
            all.extend(["--database", url.as_str()]);
        }
        all.extend(flags);
        let server = match log {
            Some(log) => ServerProcess::start_logging_to(&self.data_dir, &all, log),
            None => ServerProcess::start_with(&self.data_dir, &all),
        };
        let expected = if database.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        // A TLS port does not answer cleartext: its tests check the backend themselves.
        if flags.contains(&"--tls-cert") {
            return server;
        }
        let health = server.get_blocking("/health");
        assert!(
            health.contains(&format!(r#""backend":"{expected}""#)),
            "the server does not run on {expected}: {health}"
        );
        server
    }

    /// The database behind the servers, read directly (after a crash, say).
    pub async fn db(&self) -> AppDb {
        AppDb::open(self.database().as_deref(), &self.data_dir).await
    }
}

/// The real `allot` binary in its own process, for restarts and crashes.
pub struct ServerProcess {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    child: Child,
    /// Every line printed on standard output so far.
    stdout: Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>,
}

impl ServerProcess {
    /// Starts `allot serve` on a random port over `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> ServerProcess {
        Self::start_with(data_dir, &[])
    }

    /// Like [`Self::start`], with more `allot serve` flags.
    pub fn start_with(data_dir: &Path, flags: &[&str]) -> ServerProcess {
        Self::spawn(data_dir, flags, None)
    }

    /// Like [`Self::start_with`], its log written to `log` at level info (what an operator
    /// keeps), for tests of what the logs hold.
    pub fn start_logging_to(data_dir: &Path, flags: &[&str], log: &Path) -> ServerProcess {
        Self::spawn(data_dir, flags, Some(log))
    }

    fn spawn(data_dir: &Path, flags: &[&str], log: Option<&Path>) -> ServerProcess {
        let database = flags
            .iter()
            .position(|f| *f == "--database")
            .and_then(|i| flags.get(i + 1))
            .map(|url| (*url).to_owned());
        Self::register_admin_key(data_dir, database);
        let mut command = Command::new(env!("CARGO_BIN_EXE_allot"));
        if flags.contains(&"--database") {
            command.env("ALLOT_DATA_KEY", allot_testkit::TEST_DATA_KEY);
            command.env("ALLOT_JWT_SECRET", allot_testkit::TEST_JWT_SECRET);
        }
        // A random port unless the flags name one.
        let listen: &[&str] = if flags.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = command
            .arg("serve")
            .args(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(flags)
            // Tests drive code uses from one address as fast as they can: no code-use limit.
            .env("ALLOT_CODE_USE_RATE_PER_SEC", "0")
            .env(
                "ALLOT_LOG_LEVEL",
                if std::env::var_os("TEST_LOG").is_some() || log.is_some() {
                    "info"
                } else {
                    "warn"
                },
            )
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
                None if std::env::var_os("TEST_LOG").is_some() => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .expect("allot starts");
        // Every line the server prints is kept (the first-run setup link among them), and read
        // to the end, so that a later line never meets a closed pipe.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let lines = Arc::new((
            std::sync::Mutex::new(Vec::<String>::new()),
            std::sync::Condvar::new(),
        ));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                let (list, changed) = &*kept;
                list.lock().expect("stdout lines").push(line);
                changed.notify_all();
            }
        });
        let mut server = ServerProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            child,
            stdout: lines,
        };
        let line = server.stdout_line("allot listening on ", Duration::from_secs(60));
        server.addr = line
            .strip_prefix("allot listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected listening line {line:?}"));
        server
    }

    /// The first line the server printed that starts with `prefix`, waiting up to `timeout`
    /// for it.
    pub fn stdout_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        let (list, changed) = &*self.stdout;
        let mut lines = list.lock().expect("stdout lines");
        loop {
            if let Some(l) = lines.iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "the server printed no line starting {prefix:?} within {timeout:?}; it printed {:?}",
                *lines
            );
            lines = changed.wait_timeout(lines, left).expect("stdout lines").0;
        }
    }

    /// Stores the harness admin key in the storage the server is about to open (before it
    /// starts: SQLite's data directory is locked while a server runs), from a thread of its own
    /// so that a test's runtime is not blocked on.
    fn register_admin_key(data_dir: &Path, database: Option<String>) {
        let data_dir = data_dir.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut config = Config::for_data_dir(data_dir);
                if database.is_some() {
                    config.data_key = Some(test_data_key());
                }
                config.database = database;
                let store = allot_server::open_store(&config)
                    .await
                    .expect("storage opens");
                let auth = allot_server::service::Auth::new(
                    store.clone(),
                    Arc::new(SystemClock),
                    &config.auth,
                );
                register_admin_key(&auth).await;
                store.close().await.expect("storage closes");
            });
        })
        .join()
        .expect("the admin key is stored");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of a server started with `--tls-cert` (its certificate names 127.0.0.1).
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{signal} {pid}");
    }

    /// A plain HTTP/1.1 GET of `path`, without an async runtime; answers the whole response.
    pub fn get_blocking(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        response
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let status = self.child.wait().expect("exits");
        assert!(status.success(), "allot exited with {status}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Connect unary call with a JSON body; answers the HTTP status and the JSON body.
pub async fn connect_json(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = client
        .post(format!("{base}/couponpb.CouponService/{method}"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .json(&body)
        .send()
        .await
        .expect("connect call");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

pub fn coupon_client(channel: GrpcChannel) -> CouponServiceClient<GrpcChannel> {
    CouponServiceClient::new(channel).max_decoding_message_size(usize::MAX)
}

pub fn timestamp(ms: i64) -> allot_server::pb::Timestamp {
    allot_server::pb::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Creates a campaign over gRPC that opened a minute ago (by the system clock).
pub async fn open_campaign(client: &mut CouponServiceClient<GrpcChannel>, total: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    client
        .create_campaign(CreateCampaignRequest {
            name: format!("test campaign of {total}"),
            start_time: Some(timestamp(now - 60_000)),
            total_coupons: total,
            ..Default::default()
        })
        .await
        .expect("campaign created")
        .into_inner()
        .campaign_id
}

/// `clients` gRPC clients spread over `channels`, each issuing from the campaign until it is
/// sold out; answers every code received. Any answer but a code or RESOURCE_EXHAUSTED fails.
pub async fn race_for_campaign(channels: &[GrpcChannel], id: i64, clients: usize) -> Vec<String> {
    let racers = (0..clients).map(|i| {
        let mut client = coupon_client(channels[i % channels.len()].clone());
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                match client
                    .issue_coupon(allot_server::pb::couponpb::IssueCouponRequest {
                        campaign_id: id,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r) => mine.push(r.into_inner().coupon_code),
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => return mine,
                    Err(s) => panic!("unexpected {s:?}"),
                }
            }
        })
    });
    let mut received = Vec::new();
    for r in futures::future::join_all(racers).await {
        received.extend(r.expect("racer"));
    }
    received
}

/// Every code of a campaign in issue order, from the paged REST listing (as the harness
/// admin): `GetCampaign` answers only the first `GET_CAMPAIGN_CODES_MAX`.
pub async fn all_campaign_codes(base: &str, id: i64) -> Vec<String> {
    let mut codes = Vec::new();
    let mut after = 0;
    loop {
        let page: serde_json::Value = http()
            .get(format!(
                "{base}/api/v1/campaigns/{id}/coupons?after={after}&limit=10000"
            ))
            .send()
            .await
            .expect("listing answers")
            .json()
            .await
            .expect("listing is JSON");
        for c in page["coupons"].as_array().expect("coupons") {
            codes.push(c["code"].as_str().expect("code").to_owned());
        }
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => return codes,
        }
    }
}

/// The promotions' invariants, read from the database (either backend); run after every
/// concurrency test of promotions. For every promotion and every customer row of one: what
/// is redeemed and held never passes a budget or a limit, and each counter equals the sum over
/// the hold items in that status; every bound code's uses equal the held and redeemed holds
/// that use it; every order that consumed a hold has it redeemed for itself, or rolled back if
/// the order was cancelled, with the hold's discount.
pub async fn assert_promotion_invariants(db: &AppDb) {
    // The sums of a promotion's hold items in one status, optionally for one customer.
    let sum = |status: &str, customer: bool| {
        let whose = if customer {
            " AND h.customer = c.customer"
        } else {
            ""
        };
        let p = if customer { "c.promotion_id" } else { "p.id" };
        (
            format!(
                "(SELECT coalesce(sum(i.amount_minor), 0) FROM promotion_hold_items i
                  JOIN promotion_holds h ON h.id = i.hold_id
                  WHERE i.promotion_id = {p} AND h.status = '{status}'{whose})"
            ),
            format!(
                "(SELECT count(*) FROM promotion_hold_items i
                  JOIN promotion_holds h ON h.id = i.hold_id
                  WHERE i.promotion_id = {p} AND h.status = '{status}'{whose})"
            ),
        )
    };
    let checks = |alias: &str, customer: bool| {
        let (held_minor, held) = sum("held", customer);
        let (redeemed_minor, redemptions) = sum("redeemed", customer);
        format!(
            "({a}.budget_minor IS NOT NULL AND {a}.redeemed_minor + {a}.held_minor > {a}.budget_minor)
             OR ({a}.redemptions_max IS NOT NULL AND {a}.redemptions + {a}.held > {a}.redemptions_max)
             OR {a}.held_minor <> {held_minor} OR {a}.held <> {held}
             OR {a}.redeemed_minor <> {redeemed_minor} OR {a}.redemptions <> {redemptions}",
            a = alias
        )
    };
    let promotions = db
        .count(&format!(
            "SELECT count(*) FROM promotions p WHERE {}",
            checks("p", false)
        ))
        .await;
    assert_eq!(
        promotions,
        0,
        "promotions past a limit, or whose counters differ from their holds: {:?}",
        db.strings(
            "SELECT id || ': ' || redeemed_minor || '+' || held_minor || ' of '
                    || coalesce(budget_minor, -1) || ', ' || redemptions || '+' || held
                    || ' of ' || coalesce(redemptions_max, -1) FROM promotions"
        )
        .await
    );
    let customers = db
        .count(&format!(
            "SELECT count(*) FROM promotion_customers c WHERE {}",
            checks("c", true)
        ))
        .await;
    assert_eq!(
        customers, 0,
        "customers past a per-customer limit, or whose counters differ from their holds"
    );
    let codes = db
        .count(
            "SELECT count(*) FROM promotion_codes k
             WHERE k.uses > k.max_uses
                OR k.uses <> (SELECT count(*) FROM promotion_hold_items i
                              JOIN promotion_holds h ON h.id = i.hold_id
                              WHERE i.code = k.code AND h.status IN ('held', 'redeemed'))",
        )
        .await;
    assert_eq!(
        codes, 0,
        "codes whose uses differ from the holds using them"
    );
    let orders = db
        .count(
            "SELECT count(*) FROM orders o LEFT JOIN promotion_holds h ON h.id = o.promotion_hold_id
             WHERE o.promotion_hold_id IS NOT NULL
               AND (h.id IS NULL OR h.reference IS NULL OR h.reference <> 'order-' || o.id
                    OR h.discount_minor <> o.promotion_minor
                    OR h.shipping_discount_minor <> o.shipping_discount_minor
                    OR h.status <> CASE WHEN o.status = 'cancelled' THEN 'rolled_back'
                                        ELSE 'redeemed' END)",
        )
        .await;
    assert_eq!(
        orders, 0,
        "orders whose promotion hold is not theirs, not redeemed (or rolled back when cancelled), or of another amount"
    );
    let unowned = db
        .count(
            "SELECT count(*) FROM promotion_holds h
             WHERE h.reference LIKE 'order-%' AND h.status IN ('redeemed', 'rolled_back')
               AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.promotion_hold_id = h.id)",
        )
        .await;
    assert_eq!(
        unowned, 0,
        "holds redeemed for an order that does not name them"
    );
}

/// The password every signed-in test account is made with.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// How long a test waits for the server's workers before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One REST call to `base`: as the harness admin (its API key), or with `authorization:
/// bearer` (the header's whole value, `Bearer ...`) when given. The answer's status and JSON
/// body (`Null` when it is not JSON).
pub async fn call_at(
    base: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client = http();
    let url = format!("{base}{path}");
    let mut req = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "PUT" => client.put(url),
        "PATCH" => client.patch(url),
        "DELETE" => client.delete(url),
        m => panic!("method {m}"),
    };
    if let Some(b) = bearer {
        req = req.header("authorization", b);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// [`call_at`] the app's own address.
pub async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    call_at(&app.url(), method, path, bearer, body).await
}

/// Polls `check` until it answers `Some`, failing after [`PATIENCE`] with `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A signed-in user: account id, email and the bearer header value.
pub struct Account {
    pub id: i64,
    pub email: String,
    pub bearer: String,
}

/// A new user of `role` (password [`TEST_PASSWORD`]), signed in through the API.
pub async fn account(app: &TestApp, email: &str, role: allot_domain::auth::Role) -> Account {
    use allot_domain::auth::{Email, Password};
    let user = app
        .services
        .auth
        .create_user(
            Email::parse(email).unwrap(),
            Password::parse(TEST_PASSWORD).unwrap(),
            role,
        )
        .await
        .expect("user created");
    let (status, body) = call(
        app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(serde_json::json!({"email": email, "password": TEST_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    Account {
        id: user.id.get(),
        email: email.to_owned(),
        bearer: format!("Bearer {}", body["access_token"].as_str().unwrap()),
    }
}

//! Real servers for tests, never mocks: each test gets its own PostgreSQL cluster (and Redis
//! server, `RedisServer`, SMTP server, `SmtpServer`, and headless Chromium, `Browser`) on a
//! temporary directory and a free port, stopped and removed when dropped.
//!
//! A missing server binary is a test failure, not a skip: CI must notice.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod browser;
pub mod proxy;
mod redis;
mod smtp;
pub mod tls;

pub use browser::Browser;
pub use proxy::Proxy;
pub use redis::RedisServer;
pub use smtp::{ReceivedMail, SmtpOptions, SmtpServer, SmtpServerTls};
pub use tls::{CertFiles, TestCa};

/// The data key (base64 of 32 bytes) the tests seal personal data with: a fixed, public key,
/// for tests only. Every server and store a test opens on one database must share it.
pub const TEST_DATA_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// The token signing secret of tests on a shared database (required with a database URL):
/// fixed and public, for tests only. Every server a test starts on one database shares it.
pub const TEST_JWT_SECRET: &str = "allot-test-jwt-secret-0123456789abcdef";

/// Where the PostgreSQL server binaries are looked for, in order.
const PG_BIN_DIRS: &[&str] = &["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"];
/// The unprivileged user to run PostgreSQL as when tests run as root (initdb refuses root).
const PG_SYSTEM_USER: &str = "postgres";

/// Set to `1`, [`PgCluster::start`] starts TLS clusters ([`PgCluster::start_tls`], with a CA
/// of their own): how the integration suite runs on PostgreSQL over TLS with `verify-full`.
pub const PG_TLS_ENV: &str = "ALLOT_TEST_PG_TLS";

/// A PostgreSQL cluster of its own: `initdb` on a temporary directory, `postgres` on a free
/// loopback port, a superuser `allot` trusted over TCP on loopback only (or, started with
/// TLS, admitted only over TLS with a client certificate).
pub struct PgCluster {
    dir: TempDir,
    port: u16,
    bin: PathBuf,
    as_user: Option<&'static str>,
    tls: Option<PgTlsFiles>,
}

/// The files a client of a TLS cluster needs (copies kept in the cluster's directory, so
/// they live as long as it does).
#[derive(Debug, Clone)]
pub struct PgTlsFiles {
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// A client certificate for the user `allot` and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl PgCluster {
    /// Starts a new cluster, over TLS when [`PG_TLS_ENV`] is `1`. Panics with a clear message
    /// when PostgreSQL is not installed.
    pub fn start() -> PgCluster {
        if std::env::var(PG_TLS_ENV).is_ok_and(|v| v == "1") {
            Self::start_tls(&TestCa::new("allot test PostgreSQL CA"))
        } else {
            Self::start_inner(None)
        }
    }

    /// Starts a cluster that speaks only TLS, with a certificate from `ca` for `localhost` and
    /// `127.0.0.1`, and admits only clients with a certificate from `ca` whose common name is
    /// the user (`hostssl ... cert`, no `host` line): a cleartext or certificate-less
    /// connection is refused by the server. [`PgCluster::url`] then says
    /// `sslmode=verify-full` with the CA and a client certificate for `allot`.
    pub fn start_tls(ca: &TestCa) -> PgCluster {
        Self::start_inner(Some(ca))
    }

    fn start_inner(ca: Option<&TestCa>) -> PgCluster {
        let bin = PG_BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL server binaries (initdb, pg_ctl) not found in {PG_BIN_DIRS:?}; \
                     install PostgreSQL 15: the tests need a real server"
                )
            });
        let as_user = is_root().then_some(PG_SYSTEM_USER);
        let dir = tempfile::Builder::new()
            .prefix("allot-pg-")
            .tempdir()
            .expect("temp dir");
        if let Some(user) = as_user {
            run(
                Command::new("chown").args(["-R", user]).arg(dir.path()),
                "chown",
            );
        }
        let data = dir.path().join("data");
        let port = free_port();
        let mut cluster = PgCluster {
            dir,
            port,
            bin,
            as_user,
            tls: None,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "allot",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        if let Some(ca) = ca {
            cluster.tls = Some(cluster.configure_tls(ca, &data));
        }
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_connections=300 -c shared_buffers=128MB",
            path_str(cluster.dir.path())
        );
        cluster.pg(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-o",
                &options,
                "-l",
                path_str(&cluster.dir.path().join("log")),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        cluster.wait_ready();
        cluster
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for the `postgres` database (create others with `CREATE DATABASE`).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A connection URL for `database`; on a TLS cluster with `sslmode=verify-full` on
    /// `localhost` (the name is checked), the CA and the client certificate.
    pub fn url_for(&self, database: &str) -> String {
        match &self.tls {
            None => format!("postgres://allot@127.0.0.1:{}/{database}", self.port),
            Some(tls) => format!(
                "postgres://allot@localhost:{}/{database}?sslmode=verify-full&sslrootcert={}\
                 &sslcert={}&sslkey={}",
                self.port,
                path_str(&tls.ca),
                path_str(&tls.client_cert),
                path_str(&tls.client_key)
            ),
        }
    }

    /// Replaces `pg_hba.conf` with `lines` and has the server read it again (new connections
    /// only), for tests of other ways to sign in.
    pub fn set_hba(&self, lines: &str) {
        let data = self.dir.path().join("data");
        std::fs::write(data.join("pg_hba.conf"), lines).expect("write pg_hba.conf");
        self.pg("pg_ctl", &["-D", path_str(&data), "reload"]);
    }

    /// The client's files of a TLS cluster (`None`: a cleartext one).
    pub fn tls(&self) -> Option<&PgTlsFiles> {
        self.tls.as_ref()
    }

    /// The server's certificate and key files (TLS clusters): a test may replace them and
    /// [`PgCluster::restart`] the server to present another certificate.
    pub fn server_cert_files(&self) -> (PathBuf, PathBuf) {
        let data = self.dir.path().join("data");
        (data.join("server.crt"), data.join("server.key"))
    }

    /// Writes `cert` as the server's certificate (readable by the server), for
    /// [`PgCluster::server_cert_files`].
    pub fn install_server_cert(&self, cert: &CertFiles) {
        let (crt, key) = self.server_cert_files();
        std::fs::write(&crt, &cert.cert_pem).expect("write the server certificate");
        std::fs::write(&key, &cert.key_pem).expect("write the server key");
        self.own_private(&key);
        self.own_private(&crt);
    }

    /// `ssl = on` with a certificate from `ca`, and `pg_hba.conf` admitting TLS with a client
    /// certificate only.
    fn configure_tls(&self, ca: &TestCa, data: &Path) -> PgTlsFiles {
        let server = ca.server_cert("pg-server", &["localhost", "127.0.0.1"]);
        self.install_server_cert(&server);
        let ca_file = data.join("root.crt");
        std::fs::write(&ca_file, ca.ca_pem()).expect("write the CA certificate");
        self.own_private(&ca_file);
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        use std::io::Write as _;
        writeln!(
            conf,
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             ssl_ca_file = 'root.crt'"
        )
        .expect("write postgresql.conf");
        // Sockets in the cluster's directory stay trusted (tools); TCP only over TLS with a
        // client certificate whose common name is the user.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
        )
        .expect("write pg_hba.conf");
        // The client's copies, outside the data directory (owned by the test's user).
        let client = ca.client_cert("pg-client", "allot");
        let files = PgTlsFiles {
            ca: self.dir.path().join("client-ca.pem"),
            client_cert: self.dir.path().join("client.pem"),
            client_key: self.dir.path().join("client-key.pem"),
        };
        std::fs::write(&files.ca, ca.ca_pem()).expect("write the CA copy");
        std::fs::write(&files.client_cert, &client.cert_pem).expect("write the client cert");
        std::fs::write(&files.client_key, &client.key_pem).expect("write the client key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&files.client_key, std::fs::Permissions::from_mode(0o600))
                .expect("client key mode 0600");
        }
        files
    }

    /// Mode 0600 and, when the server runs as another user, owned by that user: PostgreSQL
    /// refuses a key file others can read.
    fn own_private(&self, path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .expect("mode 0600");
        }
        if let Some(user) = self.as_user {
            run(Command::new("chown").arg(user).arg(path), "chown");
        }
    }

    /// Stops the server (fast, like a crash of the service) and starts it again on the same
    /// data and port.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server at once (like a crash, or the database going away): clients see
    /// their connections drop and new ones refused until [`PgCluster::start_again`].
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        self.pg(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Stops the server with `pg_ctl stop -m <mode>` (`fast`: sessions ended, transactions
    /// rolled back; `immediate`: killed, recovery at the next start) and starts it again on
    /// the same data and port: `pg_ctl restart -m <mode>` in two steps, so that a test can look
    /// at its clients while the database is down ([`PgCluster::stop_with`] and
    /// [`PgCluster::start_again`] for that).
    pub fn restart_with(&self, mode: &str) {
        self.stop_with(mode);
        self.start_again();
    }

    /// `pg_ctl stop -m <mode>` (`smart`, `fast` or `immediate`).
    pub fn stop_with(&self, mode: &str) {
        let data = self.dir.path().join("data");
        self.pg("pg_ctl", &["-D", path_str(&data), "-m", mode, "-w", "stop"]);
    }

    /// Starts a stopped server again on the same data and port.
    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=300 -c shared_buffers=128MB",
            self.port,
            path_str(self.dir.path())
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-o",
                &options,
                "-l",
                path_str(&self.dir.path().join("log")),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.wait_ready();
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args).current_dir(self.dir.path());
        run(&mut cmd, tool);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "PostgreSQL did not listen on port {} within 30 s",
            self.port
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let _ = cmd
            .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

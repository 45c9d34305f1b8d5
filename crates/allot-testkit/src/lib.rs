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
mod redis;
mod smtp;
pub mod tls;

pub use browser::Browser;
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

/// A PostgreSQL cluster of its own: `initdb` on a temporary directory, `postgres` on a free
/// loopback port, a superuser `allot` trusted over TCP on loopback only.
pub struct PgCluster {
    dir: TempDir,
    port: u16,
    bin: PathBuf,
    as_user: Option<&'static str>,
}

impl PgCluster {
    /// Starts a new cluster. Panics with a clear message when PostgreSQL is not installed.
    pub fn start() -> PgCluster {
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
        let cluster = PgCluster {
            dir,
            port,
            bin,
            as_user,
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

    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://allot@127.0.0.1:{}/{database}", self.port)
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

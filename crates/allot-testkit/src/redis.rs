//! A real Redis server for tests: `redis-server` on a free loopback port, in a temporary
//! directory, without persistence, killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where `redis-server` is looked for, in order, before `PATH`.
const REDIS_BINS: &[&str] = &["/usr/bin/redis-server", "/usr/local/bin/redis-server"];

pub struct RedisServer {
    child: Child,
    port: u16,
    tls: bool,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a new server and waits until it answers PING. Panics with a clear message when
    /// `redis-server` is not installed: the tests need a real server.
    pub fn start() -> RedisServer {
        Self::start_inner(None)
    }

    /// Starts a server that speaks only TLS (`--port 0 --tls-port P`), with a certificate from
    /// `ca` for `localhost` and `127.0.0.1`, not asking clients for certificates; its
    /// [`RedisServer::url`] is `rediss://`. Debian's redis-server is built with TLS.
    pub fn start_tls(ca: &crate::TestCa) -> RedisServer {
        Self::start_inner(Some(ca))
    }

    fn start_inner(ca: Option<&crate::TestCa>) -> RedisServer {
        let bin = find_binary().unwrap_or_else(|| {
            panic!(
                "redis-server not found in {REDIS_BINS:?} nor on PATH; install Redis \
                 (apt-get install redis-server): the tests need a real server"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("allot-redis-")
            .tempdir()
            .expect("temp dir");
        let port = crate::free_port();
        let mut command = Command::new(&bin);
        command.args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]);
        match ca {
            None => {
                command.args(["--port", &port.to_string()]);
            }
            Some(ca) => {
                let cert = ca.server_cert("redis-server", &["localhost", "127.0.0.1"]);
                command
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&cert.cert)
                    .arg("--tls-key-file")
                    .arg(&cert.key)
                    .arg("--tls-ca-cert-file")
                    .arg(ca.ca_file())
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        let child = command
            .args(["--dir", crate::path_str(dir.path())])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} did not start: {e}", bin.display()));
        let mut server = RedisServer {
            child,
            port,
            tls: ca.is_some(),
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Stops the server at once (SIGKILL), like a crash; the port is then closed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a killed server again on the same port (empty: it keeps nothing), and waits
    /// until it answers PING. Cleartext servers only.
    pub fn start_again(&mut self) {
        assert!(!self.tls, "start_again: cleartext servers only");
        self.kill();
        let bin = find_binary().expect("redis-server");
        self.child = Command::new(&bin)
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .args(["--dir", crate::path_str(self._dir.path())])
            .current_dir(self._dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} did not start: {e}", bin.display()));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited at start: {status}");
            }
            // A TLS server cannot be PINGed in the clear: listening is enough (it listens once
            // it has loaded its certificate).
            let up = if self.tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                ping(self.port)
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server did not answer PING on port {} within 30 s",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn find_binary() -> Option<PathBuf> {
    REDIS_BINS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("redis-server"))
                    .find(|p| Path::new(p).exists())
            })
        })
}

/// One inline PING over a fresh connection; true on `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}

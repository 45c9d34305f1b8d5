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
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a new server and waits until it answers PING. Panics with a clear message when
    /// `redis-server` is not installed: the tests need a real server.
    pub fn start() -> RedisServer {
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
        let child = Command::new(&bin)
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
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
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server at once (SIGKILL), like a crash; the port is then closed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited at start: {status}");
            }
            if ping(self.port) {
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

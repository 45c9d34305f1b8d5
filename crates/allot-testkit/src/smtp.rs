//! A real SMTP server for tests: Python's `aiosmtpd` (Debian's `python3-aiosmtpd`, run by the
//! Debian interpreter) on a free loopback port, storing every accepted message in a Maildir
//! that [`SmtpServer::messages`] reads back. Killed when dropped.
//!
//! Plain by default; [`SmtpServer::start_with`] adds TLS (STARTTLS, required, or implicit TLS)
//! with a certificate the test made, and a login that must be used over TLS. Each stored
//! message says how it came: `X-Tls: yes|no` and `X-Auth-Login` (the login used, if any).
//!
//! A missing interpreter or package fails the test with a clear message; it never skips.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::CertFiles;

/// The Debian interpreter that has `python3-aiosmtpd` installed.
const PYTHON: &str = "/usr/bin/python3";

/// The server: aiosmtpd's SMTP protocol and Maildir handler on an asyncio server of our own,
/// since its command line has no way to require a login. Arguments: host, port, maildir,
/// mode (plain|starttls|smtps), certificate, key, login, password (`-`: none).
const SERVER_PY: &str = r#"
import asyncio, ssl, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

host, port, maildir, mode, cert, key, login, password = sys.argv[1:9]

class Handler(Mailbox):
    def prepare_message(self, session, envelope):
        message = super().prepare_message(session, envelope)
        message["X-Tls"] = "yes" if mode == "smtps" or session.ssl is not None else "no"
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            message["X-Auth-Login"] = session.auth_data.login.decode()
        return message

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == login
          and auth_data.password.decode() == password)
    return AuthResult(success=ok, auth_data=auth_data if ok else None)

async def main():
    context = None
    if mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    kwargs = {"hostname": "localhost"}
    if mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if login != "-":
        # Over implicit TLS the whole connection is encrypted before AUTH.
        kwargs.update(authenticator=authenticate, auth_required=True,
                      auth_require_tls=(mode != "smtps"))
    handler = Handler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **kwargs), host, int(port),
        ssl=context if mode == "smtps" else None)
    await server.serve_forever()

asyncio.run(main())
"#;

/// How the server speaks TLS.
#[derive(Debug, Clone, Default)]
pub enum SmtpServerTls {
    /// Plain SMTP.
    #[default]
    None,
    /// STARTTLS offered and required before anything else.
    StartTls(CertFiles),
    /// Implicit TLS from the first byte (SMTPS): [`SmtpServer::url`] is `smtps://`.
    Implicit(CertFiles),
}

/// How a server is started.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    pub tls: SmtpServerTls,
    /// A login (user, password) every message must be sent under, over TLS only.
    pub login: Option<(String, String)>,
}

pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    options: SmtpOptions,
}

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The headers in order, names as sent, values unfolded.
    pub headers: Vec<(String, String)>,
    /// The body with CRLF turned into LF.
    pub body: String,
}

impl ReceivedMail {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn subject(&self) -> Option<&str> {
        self.header("Subject")
    }
}

impl SmtpServer {
    /// Starts a server on a free port and waits until it greets. Panics when the interpreter
    /// or `python3-aiosmtpd` is missing: the tests need a real server.
    pub fn start() -> SmtpServer {
        Self::start_on(crate::free_port())
    }

    /// Starts a server on `port` (to bring a server back on the port a test stopped).
    pub fn start_on(port: u16) -> SmtpServer {
        Self::start_inner(port, SmtpOptions::default())
    }

    /// Starts a server with TLS and a login as `options` say, on a free port.
    pub fn start_with(options: SmtpOptions) -> SmtpServer {
        Self::start_inner(crate::free_port(), options)
    }

    fn start_inner(port: u16, options: SmtpOptions) -> SmtpServer {
        let dir = tempfile::Builder::new()
            .prefix("allot-smtp-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("server.py"), SERVER_PY).expect("server script");
        let mut server = SmtpServer {
            child: None,
            port,
            dir,
            options,
        };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`, or `smtps://localhost:PORT` with implicit TLS (`localhost`
    /// with STARTTLS too: the name its certificate is checked against).
    pub fn url(&self) -> String {
        match &self.options.tls {
            SmtpServerTls::None => format!("smtp://127.0.0.1:{}", self.port),
            SmtpServerTls::StartTls(_) => format!("smtp://localhost:{}", self.port),
            SmtpServerTls::Implicit(_) => format!("smtps://localhost:{}", self.port),
        }
    }

    /// Stops the server at once (SIGKILL); the port is then closed. Messages received so far
    /// stay readable; [`Self::restart`] starts it again on the same port and mailbox.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and mailbox.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Every message received, in the order they were stored.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let new = self.maildir().join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                let raw = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                parse(&String::from_utf8_lossy(&raw))
            })
            .collect()
    }

    /// Waits up to `timeout` until at least `n` messages arrived; answers them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mailbox")
    }

    fn spawn(&mut self) {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} not found; install python3-aiosmtpd (apt-get install python3-aiosmtpd): \
             the tests need a real SMTP server"
        );
        let (mode, cert) = match &self.options.tls {
            SmtpServerTls::None => ("plain", None),
            SmtpServerTls::StartTls(c) => ("starttls", Some(c)),
            SmtpServerTls::Implicit(c) => ("smtps", Some(c)),
        };
        let path = |p: Option<&Path>| p.map_or("-".to_owned(), |p| p.display().to_string());
        let (login, password) = self
            .options
            .login
            .clone()
            .unwrap_or_else(|| ("-".to_owned(), "-".to_owned()));
        let log = std::fs::File::create(self.dir.path().join("log")).expect("log file");
        let child = Command::new(PYTHON)
            .arg(self.dir.path().join("server.py"))
            .args(["127.0.0.1", &self.port.to_string()])
            .arg(self.maildir())
            .args([mode, &path(cert.map(|c| c.cert.as_path()))])
            .arg(path(cert.map(|c| c.key.as_path())))
            .args([login, password])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON} with aiosmtpd did not start: {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
                panic!(
                    "aiosmtpd exited at start ({status}): {err}\ninstall python3-aiosmtpd \
                     (apt-get install python3-aiosmtpd): the tests need a real SMTP server"
                );
            }
            // Over implicit TLS the greeting comes after a handshake: an open port will do.
            let ready = match self.options.tls {
                SmtpServerTls::Implicit(_) => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
                _ => greets(self.port),
            };
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("aiosmtpd did not greet on port {} within 30 s", self.port);
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when a `220` greeting arrives on a fresh connection.
fn greets(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"220"),
        Err(_) => false,
    }
}

/// Parses a stored message: headers (unfolded) up to the first empty line, then the body.
/// aiosmtpd's Mailbox adds `X-MailFrom` and `X-RcptTo` with the envelope.
fn parse(raw: &str) -> ReceivedMail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let rcpt_to = find("X-RcptTo")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    ReceivedMail {
        rcpt_to,
        mail_from: find("X-MailFrom"),
        body: body.to_owned(),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unfolded_headers_envelope_and_body() {
        let m = parse(
            "Subject: a long\r\n subject\r\nTo: b@y.org\r\nX-MailFrom: a@x.org\r\n\
             X-RcptTo: b@y.org, c@y.org\r\n\r\nline one\r\nline two\r\n",
        );
        assert_eq!(m.subject(), Some("a long subject"));
        assert_eq!(m.rcpt_to, vec!["b@y.org", "c@y.org"]);
        assert_eq!(m.mail_from, "a@x.org");
        assert_eq!(m.body, "line one\nline two\n");
    }
}

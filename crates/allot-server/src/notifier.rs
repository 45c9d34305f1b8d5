//! The two background workers of notifications: the rules consumer, which reads the event log
//! after its stored cursor and turns events into notifications (see
//! [`Notifications::consume_once`]), and the sender, which delivers queued emails over SMTP
//! with `lettre` and SMS and push through the shop's HTTP gateway
//! ([`crate::notify_gateway`]), retrying with backoff. Both are safe with several instances: the
//! consumer is leased by one instance at a time and commits only from the cursor it read; the
//! sender claims rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
//!
//! Exactly once, and its limit: an email is marked sent right after the SMTP server accepted
//! it. A crash between that acceptance and the commit of `sent` (a few milliseconds) leaves
//! the row claimed; once the claim's lease runs out it is sent again. Every other crash
//! leaves it to be sent once.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::notify_gateway::{Gateway, NOT_CONFIGURED as GATEWAY_NOT_CONFIGURED};
use crate::service::notification::{NotificationSettings, Notifications, SendFailure, SmtpTls};

/// Where to send mail and how: parsed from `smtp_url` and `smtp_tls`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    pub tls: SmtpTls,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// The port of `smtp://` when the URL names none.
pub const SMTP_DEFAULT_PORT: u16 = 25;
/// The port of implicit TLS (`smtps://`, or `smtp_tls = tls`) when the URL names none.
pub const SMTPS_DEFAULT_PORT: u16 = 465;

impl SmtpTarget {
    /// Parses `smtp://[user:password@]host[:port]` (STARTTLS, required) or `smtps://...`
    /// (implicit TLS); `tls`, the `smtp_tls` setting, overrides the scheme's mode, except
    /// that `smtps://` with anything but `tls` is a contradiction. Credentials are refused
    /// with `none`: they would cross the network in clear.
    pub fn parse(url: &str, tls: Option<SmtpTls>) -> Result<SmtpTarget, String> {
        let (rest, scheme_tls) = if let Some(rest) = url.strip_prefix("smtp://") {
            (rest, SmtpTls::StartTls)
        } else if let Some(rest) = url.strip_prefix("smtps://") {
            (rest, SmtpTls::Implicit)
        } else {
            return Err("smtp_url: must start with smtp:// (STARTTLS) or smtps:// (TLS)".into());
        };
        let tls = match (scheme_tls, tls) {
            (SmtpTls::Implicit, Some(t)) if t != SmtpTls::Implicit => {
                return Err(format!(
                    "smtp_tls: {} contradicts smtp_url's smtps:// (implicit TLS); use \
                     smtp:// for STARTTLS or plain SMTP",
                    t.name()
                ));
            }
            (from_scheme, chosen) => chosen.unwrap_or(from_scheme),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains(['?', '/', '#']) {
            return Err(
                "smtp_url: smtp[s]://[user:password@]host[:port], no path or options".into(),
            );
        }
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, password) = userinfo
                    .split_once(':')
                    .ok_or_else(|| "smtp_url: credentials must be user:password".to_owned())?;
                (Some((user.to_owned(), password.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("smtp_url: port {p:?} is not a port number"))?,
            ),
            None if tls == SmtpTls::Implicit => (hostport, SMTPS_DEFAULT_PORT),
            None => (hostport, SMTP_DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err("smtp_url: the host is missing".into());
        }
        if tls == SmtpTls::Plain && credentials.is_some() {
            return Err(
                "smtp_url: credentials with smtp_tls = none would be sent in clear; use \
                 STARTTLS (smtp://, the default) or TLS (smtps://), or a relay that needs no \
                 credentials"
                    .into(),
            );
        }
        Ok(SmtpTarget {
            host: host.to_owned(),
            port,
            credentials,
            tls,
        })
    }
}

/// Sends one email per call over a fresh SMTP connection.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for failure reasons.
    server: String,
    /// The whole exchange's bound: lettre bounds only the TCP connect, so a server that
    /// accepts and then says nothing (or never finishes a TLS handshake) would hold the
    /// sender, and every email behind it, for good.
    timeout: Duration,
}

impl Mailer {
    /// The mailer `settings` describe (`None` without `smtp_url`), every setting checked:
    /// what is wrong stops the start (`Application::build`) instead of failing every email.
    pub(crate) fn from_settings(settings: &NotificationSettings) -> Result<Option<Mailer>, String> {
        let Some(url) = &settings.smtp_url else {
            return Ok(None);
        };
        let target = SmtpTarget::parse(url, settings.smtp_tls)?;
        let from = settings
            .smtp_from
            .parse::<Mailbox>()
            .map_err(|e| format!("smtp_from: {e}"))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .timeout(Some(settings.smtp_timeout));
        let tls = match target.tls {
            SmtpTls::Plain => Tls::None,
            mode => {
                // Trust: the system's store (lettre's `rustls-native-certs`) and the CA file;
                // lettre verifies the certificate and the host name.
                let mut params = TlsParameters::builder(target.host.clone());
                if let Some(path) = &settings.smtp_ca_file {
                    for cert in crate::outbound_tls::ca_certificates(path, "smtp_ca_file")? {
                        let cert = Certificate::from_der(cert.to_vec())
                            .map_err(|e| format!("smtp_ca_file: {}: {e}", path.display()))?;
                        params = params.add_root_certificate(cert);
                    }
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| format!("smtp_tls: TLS setup: {e}"))?;
                if mode == SmtpTls::StartTls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        builder = builder.tls(tls);
        if let Some((user, password)) = &target.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            server: format!("{}:{}", target.host, target.port),
            timeout: settings.smtp_timeout,
        }))
    }

    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), SendFailure> {
        let to: Mailbox = to.parse().map_err(|e| {
            SendFailure::Permanent(format!("the recipient address is not usable: {e}"))
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| SendFailure::Permanent(format!("the message could not be built: {e}")))?;
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message))
            .await
            .map_err(|_| {
                SendFailure::Retry(format!(
                    "SMTP to {}: no answer within {} ms",
                    self.server,
                    self.timeout.as_millis()
                ))
            })?;
        sent.map(|_| ()).map_err(|e| {
            // A certificate refused is told with rustls' reason, which lettre's text buries.
            let reason = match crate::outbound_tls::tls_failure(&e) {
                Some(tls) => format!("TLS to {}: {tls}", self.server),
                None => format!("SMTP to {}: {e}", self.server),
            };
            // A permanent refusal (5xx) of this message will not change by retrying.
            if e.is_permanent() {
                SendFailure::Permanent(reason)
            } else {
                SendFailure::Retry(reason)
            }
        })
    }
}

/// Checks the SMTP settings as the start does (`Mailer::from_settings`), building nothing that
/// is kept.
pub(crate) fn check_settings(settings: &NotificationSettings) -> Result<(), String> {
    Mailer::from_settings(settings).map(|_| ())
}

/// The reason given to email notifications when no SMTP server is configured.
pub const NOT_CONFIGURED: &str = "email is not configured: set smtp_url (and smtp_from)";

pub(crate) struct Notifier {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Notifier {
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts the consumer and the sender over `notifications`; the gateway's TLS trust, timeout
/// and plain-http permission are the webhooks' (`webhooks`).
pub(crate) fn start(
    notifications: Arc<Notifications>,
    webhooks: &crate::webhook_worker::WebhookSettings,
) -> Notifier {
    let (stop, stopped) = watch::channel(false);
    let settings: NotificationSettings = notifications.settings().clone();
    // One owner name per process: the consumer's lease is renewed by the process holding it.
    let owner = format!(
        "{}-{}",
        std::process::id(),
        rand::random::<u64>() & 0xffff_ffff
    );
    let mut tasks = Vec::new();
    {
        let notifications = notifications.clone();
        tasks.push(tokio::spawn(every(
            settings.poll_interval,
            stopped.clone(),
            move || {
                let (n, owner) = (notifications.clone(), owner.clone());
                async move {
                    // Drain a backlog run after run, within the tick.
                    loop {
                        match n.consume_once(&owner).await {
                            Ok(passed) if passed >= crate::service::notification::EVENTS_PER_RUN_MAX as usize => continue,
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "notification consumer failed; next try at the next tick");
                                break;
                            }
                        }
                    }
                }
            },
        )));
    }
    let mailer = match Mailer::from_settings(&settings) {
        Ok(mailer) => mailer.map(Arc::new),
        Err(e) => {
            // `Application::build` refuses to start on this; a caller that skipped it gets
            // every email failed with the reason instead.
            tracing::error!(error = %e, "SMTP settings are not usable; emails fail until fixed");
            None
        }
    };
    let gateway = match Gateway::from_settings(&settings, webhooks) {
        Ok(gateway) => gateway.map(Arc::new),
        Err(e) => {
            tracing::error!(error = %e, "notification gateway settings are not usable; SMS and push fail until fixed");
            None
        }
    };
    {
        let notifications = notifications.clone();
        tasks.push(tokio::spawn(every(
            settings.poll_interval,
            stopped,
            move || {
                let (n, mailer, gateway) =
                    (notifications.clone(), mailer.clone(), gateway.clone());
                async move {
                    loop {
                        let (mailer, gateway) = (mailer.clone(), gateway.clone());
                        let run = n
                            .deliver_due_once(move |to, note| {
                                let (mailer, gateway) = (mailer.clone(), gateway.clone());
                                async move {
                                    if note.channel.via_gateway() {
                                        return match gateway {
                                            Some(g) => g.send(&note, &to).await,
                                            None => Err(SendFailure::Permanent(
                                                GATEWAY_NOT_CONFIGURED.to_owned(),
                                            )),
                                        };
                                    }
                                    match mailer {
                                        Some(m) => m.send(&to, &note.subject, &note.body).await,
                                        None => Err(SendFailure::Permanent(NOT_CONFIGURED.to_owned())),
                                    }
                                }
                            })
                            .await;
                        match run {
                            Ok(handled) if handled > 0 => continue,
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "notification sender failed; next try at the next tick");
                                break;
                            }
                        }
                    }
                }
            },
        )));
    }
    Notifier { stop, tasks }
}

async fn every<F, Fut>(period: Duration, mut stopped: watch::Receiver<bool>, job: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                tokio::select! {
                    () = job() => {}
                    _ = stopped.changed() => return,
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_with_and_without_port_and_credentials() {
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.credentials, t.tls),
            ("127.0.0.1", 2525, None, SmtpTls::StartTls)
        );
        let t = SmtpTarget::parse("smtp://me:p@ss@mail.example.com", None).unwrap();
        assert_eq!(t.port, SMTP_DEFAULT_PORT);
        assert_eq!(t.credentials, Some(("me".to_owned(), "p@ss".to_owned())));
        assert_eq!(t.host, "mail.example.com");
        let t = SmtpTarget::parse("smtps://mail.example.com", None).unwrap();
        assert_eq!((t.port, t.tls), (SMTPS_DEFAULT_PORT, SmtpTls::Implicit));
        assert!(SmtpTarget::parse("smtp://mail:x", None).is_err());
        assert!(SmtpTarget::parse("smtp://", None).is_err());
        assert!(SmtpTarget::parse("http://mail.example.com", None).is_err());
    }

    #[test]
    fn the_tls_setting_overrides_the_scheme_but_never_sends_credentials_in_clear() {
        let t = SmtpTarget::parse("smtp://relay:2525", Some(SmtpTls::Plain)).unwrap();
        assert_eq!(t.tls, SmtpTls::Plain);
        let t = SmtpTarget::parse("smtp://mail.example.com", Some(SmtpTls::Implicit)).unwrap();
        assert_eq!((t.port, t.tls), (SMTPS_DEFAULT_PORT, SmtpTls::Implicit));
        let e = SmtpTarget::parse("smtp://me:pw@relay", Some(SmtpTls::Plain)).unwrap_err();
        assert!(e.contains("in clear"), "{e}");
        assert!(SmtpTarget::parse("smtps://mail.example.com", Some(SmtpTls::StartTls)).is_err());
        assert!(!format!("{:?}", SmtpTarget::parse("smtp://me:pw@h", None)).contains("pw"));
    }
}

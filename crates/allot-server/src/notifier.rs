//! The two background workers of notifications: the rules consumer, which reads the event log
//! after its stored cursor and turns events into notifications (see
//! [`Notifications::consume_once`]), and the email sender, which delivers queued emails over
//! SMTP with `lettre`, retrying with backoff. Both are safe with several instances: the
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
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::service::notification::{NotificationSettings, Notifications, SendFailure};

/// Where to send mail: parsed from `smtp_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The port of `smtp://` when the URL names none.
pub const SMTP_DEFAULT_PORT: u16 = 25;

impl SmtpTarget {
    /// Parses `smtp://[user:password@]host[:port]`. Only plain SMTP: TLS (`smtps://`,
    /// STARTTLS) is not built in; relay through a local MTA for TLS onward.
    pub fn parse(url: &str) -> Result<SmtpTarget, String> {
        let rest = url.strip_prefix("smtp://").ok_or_else(|| {
            "smtp_url: must start with smtp:// (plain SMTP; TLS is not supported, use a local \
             relay)"
                .to_owned()
        })?;
        let rest = rest.trim_end_matches('/');
        if rest.contains(['?', '/', '#']) {
            return Err("smtp_url: smtp://[user:password@]host[:port], no path or options".into());
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
            None => (hostport, SMTP_DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err("smtp_url: the host is missing".into());
        }
        Ok(SmtpTarget {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

/// Sends one email per call over a fresh SMTP connection.
struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    fn new(target: &SmtpTarget, from: Mailbox, timeout: Duration) -> Mailer {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .timeout(Some(timeout));
        if let Some((user, password)) = &target.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Mailer {
            transport: builder.build(),
            from,
        }
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
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            // A permanent refusal (5xx) of this message will not change by retrying.
            let reason = format!("SMTP: {e}");
            if e.is_permanent() {
                SendFailure::Permanent(reason)
            } else {
                SendFailure::Retry(reason)
            }
        })
    }
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

/// Starts the consumer and the sender over `notifications`.
pub(crate) fn start(notifications: Arc<Notifications>) -> Notifier {
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
    let mailer = match &settings.smtp_url {
        None => None,
        Some(url) => match (
            SmtpTarget::parse(url),
            settings.smtp_from.parse::<Mailbox>(),
        ) {
            (Ok(target), Ok(from)) => {
                Some(Arc::new(Mailer::new(&target, from, settings.smtp_timeout)))
            }
            (Err(e), _) => {
                tracing::error!(error = %e, "smtp_url is not usable; emails fail until it is fixed");
                None
            }
            (_, Err(e)) => {
                tracing::error!(error = %e, "smtp_from is not an address; emails fail until it is fixed");
                None
            }
        },
    };
    {
        let notifications = notifications.clone();
        tasks.push(tokio::spawn(every(
            settings.poll_interval,
            stopped,
            move || {
                let (n, mailer) = (notifications.clone(), mailer.clone());
                async move {
                    loop {
                        let mailer = mailer.clone();
                        let run = n
                            .deliver_due_once(move |to, note| {
                                let mailer = mailer.clone();
                                async move {
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
                                tracing::warn!(error = %e, "email sender failed; next try at the next tick");
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
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.credentials),
            ("127.0.0.1", 2525, None)
        );
        let t = SmtpTarget::parse("smtp://me:p@ss@mail.example.com").unwrap();
        assert_eq!(t.port, SMTP_DEFAULT_PORT);
        assert_eq!(t.credentials, Some(("me".to_owned(), "p@ss".to_owned())));
        assert_eq!(t.host, "mail.example.com");
        assert!(SmtpTarget::parse("smtps://mail.example.com").is_err());
        assert!(SmtpTarget::parse("smtp://mail:x").is_err());
        assert!(SmtpTarget::parse("smtp://").is_err());
    }
}

//! The shop's notification gateway (issue 19): SMS and push notifications are POSTed to one
//! HTTP endpoint the shop runs (or rents), which speaks to SMS carriers and to the push
//! services of the user's devices. Allot keeps no device tokens: a push is addressed to the
//! user id, and the gateway knows that user's devices.
//!
//! One request per notification, JSON, signed like webhooks (`Allot-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under `notification_gateway_secret`), with
//! the notification id as `Idempotency-Key`: a retry after a lost answer carries the same key,
//! so the gateway can drop it. A 2xx answer is delivery; any other answer, a timeout or a
//! connection failure is retried with the notifications' backoff, then given up.

use std::time::Instant;

use allot_domain::notification::Channel;
use allot_storage::notification::Notification;

use crate::secret::Secret;
use crate::service::notification::{NotificationSettings, SendFailure};
use crate::webhook_worker::{WebhookSettings, signature};

/// The reason given to SMS and push notifications when no gateway is configured.
pub const NOT_CONFIGURED: &str = "the notification gateway is not configured: set \
    notification_gateway_url and notification_gateway_secret";

/// Failure texts kept, at most, in bytes (an error page can be long).
const REASON_LEN_MAX: usize = 300;

/// Sends SMS and push notifications to the gateway.
pub(crate) struct Gateway {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Secret,
    timeout_ms: u128,
}

/// The JSON body of a notification sent to the gateway: `to` is the phone number (E.164) of
/// an SMS, the user id (decimal) of a push.
pub fn message_body(n: &Notification, to: &str) -> serde_json::Value {
    let mut body = serde_json::json!({
        "id": n.id,
        "channel": n.channel.as_str(),
        "to": to,
        "user_id": n.user.get(),
        "rule": n.rule,
        "template": n.template,
        "created_at": crate::time::rfc3339(n.created_at),
    });
    match n.channel {
        Channel::Push => {
            body["title"] = n.subject.clone().into();
            body["body"] = n.body.clone().into();
            body["url"] = n.link.clone().into();
        }
        _ => body["text"] = n.body.clone().into(),
    }
    body
}

fn cut(mut text: String) -> String {
    if text.len() > REASON_LEN_MAX {
        let mut at = REASON_LEN_MAX;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}

impl Gateway {
    /// The gateway `settings` describe (`None` without a URL), checked as the start does: a
    /// URL that does not parse, plain http without `webhook_allow_http`, a URL without a
    /// secret (or a secret without a URL) stops the start. TLS trust and the request timeout
    /// are the webhooks' (`webhook_ca_file`, `webhook_timeout_ms`).
    pub(crate) fn from_settings(
        settings: &NotificationSettings,
        webhooks: &WebhookSettings,
    ) -> Result<Option<Gateway>, String> {
        let (url, secret) = match (&settings.gateway_url, &settings.gateway_secret) {
            (None, None) => return Ok(None),
            (Some(url), Some(secret)) if !secret.expose().is_empty() => (url, secret),
            _ => {
                return Err(
                    "notification_gateway_url and notification_gateway_secret go \
                            together: set both (a non-empty secret) or neither"
                        .to_owned(),
                );
            }
        };
        let url = reqwest::Url::parse(url).map_err(|e| format!("notification_gateway_url: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if webhooks.allow_http => {}
            "http" => {
                return Err(
                    "notification_gateway_url: plain http is refused (messages carry \
                            phone numbers and personal texts); use https, or set \
                            webhook_allow_http for a gateway on a trusted network"
                        .to_owned(),
                );
            }
            other => {
                return Err(format!(
                    "notification_gateway_url: scheme {other:?}: must be https (or http with \
                     webhook_allow_http)"
                ));
            }
        }
        if url.host_str().is_none() {
            return Err("notification_gateway_url: the host is missing".to_owned());
        }
        let tls =
            crate::outbound_tls::client_config(webhooks.ca_file.as_deref(), "webhook_ca_file")?;
        let client = reqwest::Client::builder()
            .timeout(webhooks.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("allot-notifications/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| format!("notification gateway: the HTTP client cannot be built: {e}"))?;
        Ok(Some(Gateway {
            client,
            url,
            secret: secret.clone(),
            timeout_ms: webhooks.request_timeout.as_millis(),
        }))
    }

    /// POSTs `n` addressed to `to`; Ok on a 2xx answer.
    pub(crate) async fn send(&self, n: &Notification, to: &str) -> Result<(), SendFailure> {
        let body = serde_json::to_vec(&message_body(n, to)).expect("a message serialises");
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let v1 = signature(self.secret.expose(), t, &body);
        let started = Instant::now();
        let answer = self
            .client
            .post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", n.id.to_string())
            .header("Allot-Notification-Id", n.id.to_string())
            .header("Allot-Signature", format!("t={t},v1={v1}"))
            .body(body)
            .send()
            .await;
        let channel = n.channel.as_str();
        let outcome = match &answer {
            Ok(r) if r.status().is_success() => "delivered",
            Ok(_) => "http_error",
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "connection_error",
        };
        metrics::counter!("allot_notification_gateway_requests_total",
            "channel" => channel, "outcome" => outcome)
        .increment(1);
        metrics::histogram!("allot_notification_gateway_request_duration_seconds",
            "channel" => channel)
        .record(started.elapsed().as_secs_f64());
        let host = self.url.host_str().unwrap_or("?");
        match answer {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(SendFailure::Retry(format!(
                "the notification gateway at {host} answered {}",
                r.status()
            ))),
            Err(e) if e.is_timeout() => Err(SendFailure::Retry(format!(
                "the notification gateway at {host}: no answer within {} ms",
                self.timeout_ms
            ))),
            Err(e) => {
                let text = match crate::outbound_tls::tls_failure(&e) {
                    Some(reason) => format!("TLS to the notification gateway at {host}: {reason}"),
                    None => {
                        let mut text = format!("the notification gateway at {host}: {e}");
                        let mut source = std::error::Error::source(&e);
                        while let Some(s) = source {
                            text.push_str(&format!(": {s}"));
                            source = s.source();
                        }
                        text
                    }
                };
                Err(SendFailure::Retry(cut(text)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(url: Option<&str>, secret: Option<&str>) -> NotificationSettings {
        NotificationSettings {
            gateway_url: url.map(str::to_owned),
            gateway_secret: secret.map(Secret::new),
            ..NotificationSettings::default()
        }
    }

    #[test]
    fn the_gateway_needs_https_and_a_secret_unless_told_otherwise() {
        let webhooks = WebhookSettings {
            request_timeout: Duration::from_secs(1),
            ..WebhookSettings::default()
        };
        assert!(
            Gateway::from_settings(&settings(None, None), &webhooks)
                .unwrap()
                .is_none()
        );
        assert!(
            Gateway::from_settings(
                &settings(Some("https://gw.example.com/send"), Some("s")),
                &webhooks
            )
            .unwrap()
            .is_some()
        );
        let e = Gateway::from_settings(&settings(Some("https://gw.example.com"), None), &webhooks)
            .err()
            .unwrap();
        assert!(e.contains("go together"), "{e}");
        let e = Gateway::from_settings(&settings(None, Some("s")), &webhooks)
            .err()
            .unwrap();
        assert!(e.contains("go together"), "{e}");
        let e = Gateway::from_settings(
            &settings(Some("http://10.0.0.1/send"), Some("s")),
            &webhooks,
        )
        .err()
        .unwrap();
        assert!(e.contains("plain http"), "{e}");
        let allowed = WebhookSettings {
            allow_http: true,
            ..webhooks
        };
        assert!(
            Gateway::from_settings(&settings(Some("http://10.0.0.1/send"), Some("s")), &allowed)
                .unwrap()
                .is_some()
        );
        assert!(
            Gateway::from_settings(&settings(Some("ftp://x/send"), Some("s")), &allowed).is_err()
        );
    }
}

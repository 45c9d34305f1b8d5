//! Registering webhook endpoints and reading their delivery log. Delivery itself is the
//! worker's (`crate::webhook_worker`).

use std::sync::Arc;

use allot_domain::Clock;
use allot_domain::event::EventType;
use allot_storage::{Delivery, NewWebhook, Store, Webhook, WebhookChange};
use rand::RngCore;

use crate::ServiceError;

/// Longest endpoint URL accepted.
pub const URL_LEN_MAX: usize = 2_000;
/// Longest description accepted, in characters.
pub const DESCRIPTION_LEN_MAX: usize = 500;
/// Delivery log rows per page at most.
pub const DELIVERIES_LIMIT_MAX: u32 = 1_000;
/// Prefix of signing secrets, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "whsec_";

fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument {
        field,
        message: message.into(),
    }
}

/// An endpoint URL: absolute `https://` (or `http://` where plain http is allowed), with a
/// host, no credentials and no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(String);

impl EndpointUrl {
    /// `allow_http`: the `webhook_allow_http` setting; without it `http://` is refused as
    /// [`ServiceError::InsecureUrl`].
    pub fn parse(raw: &str, allow_http: bool) -> Result<EndpointUrl, ServiceError> {
        // The limit holds for the value as sent (the document's maxLength), blanks included.
        let too_long = raw.chars().count() > URL_LEN_MAX;
        let raw = raw.trim_matches([' ', '\t', '\n', '\r']);
        if raw.is_empty() || too_long {
            return Err(invalid(
                "url",
                format!("url: 1 to {URL_LEN_MAX} characters"),
            ));
        }
        if !has_documented_form(raw) {
            return Err(invalid(
                "url",
                "url: https://host[:port][/path][?query]: a host name (its last label starting \
                 with a letter) or an IPv4 address, a port 1 to 65535, and only URL characters",
            ));
        }
        let url = reqwest::Url::parse(raw)
            .map_err(|e| invalid("url", format!("url: not an absolute URL ({e})")))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(ServiceError::InsecureUrl { field: "url" }),
            other => {
                return Err(invalid(
                    "url",
                    format!("url: the scheme must be https, not {other:?}"),
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("url", "url: a host is required"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                "url: credentials in the URL are not accepted",
            ));
        }
        if url.fragment().is_some() {
            return Err(invalid("url", "url: a fragment (#...) is not accepted"));
        }
        Ok(EndpointUrl(url.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The form the OpenAPI document gives an endpoint URL ([`URL_PATTERN`], with `http://` as
/// well: whether plain http is taken is decided after), checked by hand:
/// the URL parser alone is lenient (it takes `HTTP://`, spaces, any port, a numeric last label
/// read as an IPv4 address), so without this the server would take URLs the document rules out.
fn has_documented_form(raw: &str) -> bool {
    let Some(rest) = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
    else {
        return false;
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && !p.starts_with('0')
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
    });
    let tail_ok = tail
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~!$&'()*+,;=:@%/?-".contains(&b));
    port_ok && tail_ok && (is_ipv4(host) || is_host_name(host))
}

fn is_ipv4(host: &str) -> bool {
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && (o.len() == 1 || !o.starts_with('0'))
                && o.bytes().all(|b| b.is_ascii_digit())
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Labels of 1 to 63 letters, digits and `-`, none an IDNA `xn--` label (it would have to be
/// valid punycode), the last starting with a letter (else the parser reads an IPv4 address).
fn is_host_name(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    labels.iter().all(|l| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
    }) && labels
        .last()
        .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// [`has_documented_form`] as the OpenAPI document's `pattern` (surrounding spaces, tabs and
/// line breaks are trimmed first), for `https://` only: what every server takes. A server with
/// `webhook_allow_http` takes the same form with `http://` too; one without answers that 422,
/// as the document says (a contract fuzzer's schema-valid URL is never refused).
pub const URL_PATTERN: &str = concat!(
    r"^[ \t\n\r]*https://(",
    r"((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    r"|((?![Xx][Nn]--)[A-Za-z0-9-]{1,63}\.)*(?![Xx][Nn]--)[A-Za-z][A-Za-z0-9-]{0,62}",
    r")(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"([/?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?[ \t\n\r]*$",
);

/// A description of up to [`DESCRIPTION_LEN_MAX`] characters.
pub fn parse_description(raw: &str) -> Result<String, ServiceError> {
    let d = raw.trim();
    if raw.chars().count() > DESCRIPTION_LEN_MAX {
        return Err(invalid(
            "description",
            format!("description: at most {DESCRIPTION_LEN_MAX} characters"),
        ));
    }
    Ok(d.to_owned())
}

/// A filter: one or more known event types (duplicates folded).
pub fn parse_event_types(names: &[&str]) -> Result<Vec<EventType>, ServiceError> {
    if names.is_empty() {
        return Err(invalid(
            "event_types",
            "event_types: at least one type, or leave it out (or null) for every type",
        ));
    }
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let t = EventType::parse(name).ok_or_else(|| {
            invalid(
                "event_types",
                format!("event_types: unknown event type {name:?}"),
            )
        })?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(types)
}

/// A registration, parsed.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: EndpointUrl,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    /// The first seq to deliver; `None`: events appended after registration.
    pub from_seq: Option<i64>,
}

/// A change, parsed: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<EndpointUrl>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Option<Vec<EventType>>>,
    pub active: Option<bool>,
}

/// A fresh signing secret: 32 bytes from the operating system's CSPRNG (through `rand`'s
/// thread generator), hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut s = String::with_capacity(SECRET_PREFIX.len() + 64);
    s.push_str(SECRET_PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub struct Webhooks {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// `webhook_allow_http`: plain http endpoints may be registered.
    allow_http: bool,
}

impl Webhooks {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, allow_http: bool) -> Self {
        Webhooks {
            store,
            clock,
            allow_http,
        }
    }

    /// Parses an endpoint URL as this server accepts them (`http://` only with
    /// `webhook_allow_http`).
    pub fn endpoint_url(&self, raw: &str) -> Result<EndpointUrl, ServiceError> {
        EndpointUrl::parse(raw, self.allow_http)
    }

    /// Registers the endpoint; the answer holds its signing secret, the only time it is shown.
    pub async fn create(&self, new: NewEndpoint) -> Result<Webhook, ServiceError> {
        let webhook = self
            .store
            .create_webhook(
                NewWebhook {
                    url: new.url.0,
                    description: new.description,
                    event_types: new.event_types,
                    secret: new_secret(),
                    from_seq: new.from_seq,
                },
                self.clock.now(),
            )
            .await?;
        tracing::info!(webhook = webhook.id, url = %webhook.url, "webhook endpoint registered");
        Ok(webhook)
    }

    pub async fn list(&self) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.store.webhooks().await?)
    }

    pub async fn get(&self, id: i64) -> Result<Webhook, ServiceError> {
        self.store
            .webhook(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "webhook" })
    }

    pub async fn update(&self, id: i64, change: EndpointChange) -> Result<Webhook, ServiceError> {
        let change = WebhookChange {
            url: change.url.map(|u| u.0),
            description: change.description,
            event_types: change.event_types,
            active: change.active,
            retry_now: false,
        };
        let webhook = self
            .store
            .update_webhook(id, change, self.clock.now())
            .await?
            .ok_or(ServiceError::NotFound { what: "webhook" })?;
        tracing::info!(
            webhook = id,
            active = webhook.active,
            "webhook endpoint changed"
        );
        Ok(webhook)
    }

    /// Makes a failing endpoint's next attempt due now (after its receiver is fixed, say),
    /// instead of at the end of its backoff; the worker sends it at its next poll. Harmless
    /// for an endpoint that is not failing: nothing is waiting, so nothing more is sent.
    pub async fn retry(&self, id: i64) -> Result<Webhook, ServiceError> {
        let change = WebhookChange {
            retry_now: true,
            ..WebhookChange::default()
        };
        let webhook = self
            .store
            .update_webhook(id, change, self.clock.now())
            .await?
            .ok_or(ServiceError::NotFound { what: "webhook" })?;
        tracing::info!(
            webhook = id,
            failed_attempts = webhook.attempts,
            "webhook retry requested"
        );
        Ok(webhook)
    }

    pub async fn delete(&self, id: i64) -> Result<(), ServiceError> {
        if !self.store.delete_webhook(id, self.clock.now()).await? {
            return Err(ServiceError::NotFound { what: "webhook" });
        }
        tracing::info!(webhook = id, "webhook endpoint deleted");
        Ok(())
    }

    /// The endpoint's delivery log after row `after`, oldest first.
    pub async fn deliveries(
        &self,
        id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, ServiceError> {
        self.get(id).await?;
        Ok(self.store.webhook_deliveries(id, after, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_allowed_http_with_a_host_and_nothing_hidden() {
        assert!(EndpointUrl::parse("https://127.0.0.1:9000/hook", false).is_ok());
        assert!(EndpointUrl::parse(" https://shop.example/a?b=c ", false).is_ok());
        assert!(EndpointUrl::parse("http://shop.example/a?b=c", true).is_ok());
        assert!(matches!(
            EndpointUrl::parse("http://shop.example/", false),
            Err(ServiceError::InsecureUrl { field: "url" })
        ));
        for bad in [
            "",
            "shop.example/hook",
            "ftp://shop.example/",
            "https://user:pw@shop.example/",
            "https://shop.example/#frag",
        ] {
            assert!(EndpointUrl::parse(bad, true).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn filters_name_known_types_once() {
        let t = parse_event_types(&["OrderCreated", "OrderCreated", "CouponRedeemed"]).unwrap();
        assert_eq!(t, vec![EventType::OrderCreated, EventType::CouponRedeemed]);
        assert!(parse_event_types(&["OrderMade"]).is_err());
        assert!(parse_event_types(&[]).is_err());
    }

    #[test]
    fn secrets_are_prefixed_hex_of_32_bytes_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
        assert!(
            a[SECRET_PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_hexdigit())
        );
    }
}

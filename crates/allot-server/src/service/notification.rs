//! Notifications (issue 8): templates rendered by minijinja, rules that turn events into
//! notifications, users' channel preferences, direct sends, the inbox and delivery status.
//! The background halves (the event-log consumer and the email sender) are in
//! [`crate::notifier`] and call [`Notifications::consume_once`] and
//! [`Notifications::deliver_due_once`].

use std::sync::Arc;
use std::time::Duration;

use allot_domain::auth::AccountId;
use allot_domain::notification::{Channel, DeliveryStatus, Name, Phone};
use allot_domain::{Clock, UnixMillis};
use allot_storage::notification::{
    Attempt, ChannelSwitches, EmailPart, InAppPart, InboxQuery, NewNotification, NewTemplate,
    Notification, Preferences, PushPart, Recipients, Rule, RuleUpdate, SmsPart, Template,
    TemplateDelete, TemplateKey, TemplateWrite,
};
use allot_storage::{EventQuery, Store};
use minijinja::{Environment, UndefinedBehavior};

use crate::ServiceError;

/// Longest template source accepted, in bytes (each part).
pub const TEMPLATE_SOURCE_MAX: usize = 64 * 1024;
/// Longest rendered subject or body kept, in bytes; longer output is a rendering error.
pub const RENDERED_MAX: usize = 256 * 1024;
/// Steps (engine instructions) one rendering may take. A notification's template takes a few
/// hundred; a loop too long or without end (nested `range`s, a macro calling itself) stops
/// here with a clear error instead of holding a worker (about a millisecond per 10,000 steps).
pub const TEMPLATE_RENDER_FUEL_MAX: u64 = 100_000;
/// Events the consumer reads per run, at most.
pub const EVENTS_PER_RUN_MAX: u32 = 200;
/// Inbox page size, at most.
pub const INBOX_PAGE_MAX: u32 = 200;

/// How mail reaches the SMTP server (`smtp_tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum SmtpTls {
    /// `starttls`: the connection starts plain and is upgraded before anything else is said;
    /// a server that does not offer STARTTLS is refused (never a fall back to cleartext).
    #[serde(rename = "starttls")]
    StartTls,
    /// `tls`: TLS from the first byte (SMTPS, port 465).
    #[serde(rename = "tls")]
    Implicit,
    /// `none`: plain SMTP, for a relay on this host or a trusted network; never with
    /// credentials.
    #[serde(rename = "none")]
    Plain,
}

impl SmtpTls {
    /// The setting's word for it.
    pub fn name(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "tls",
            SmtpTls::Plain => "none",
        }
    }
}

impl std::str::FromStr for SmtpTls {
    type Err = String;

    fn from_str(s: &str) -> Result<SmtpTls, String> {
        match s {
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Implicit),
            "none" => Ok(SmtpTls::Plain),
            other => Err(format!(
                "smtp_tls: {other:?} is not one of starttls, tls, none"
            )),
        }
    }
}

/// Settings of delivery (`smtp_url`, `smtp_from`, `notification_gateway_url`) and of the
/// background workers.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// `smtp://[user:password@]host[:port]` (STARTTLS) or `smtps://...` (implicit TLS).
    /// `None`: email notifications fail at once with the reason "email is not configured".
    pub smtp_url: Option<String>,
    /// The TLS mode; `None`: the URL's scheme says (`smtp://` STARTTLS, `smtps://` TLS).
    pub smtp_tls: Option<SmtpTls>,
    /// Certificates trusted for the SMTP server besides the system's store.
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// The From address of every email.
    pub smtp_from: String,
    /// How often the consumer reads the event log and the sender looks for due emails.
    pub poll_interval: Duration,
    /// Attempts of an email before it is given up (failed for good).
    pub attempts_max: u32,
    /// Wait after the first failed attempt; doubled after each further one, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a claim (the consumer's, a sender's on an email) lasts without renewal: after
    /// a crash, the work is taken up again once it ran out.
    pub lease: Duration,
    /// How long one SMTP exchange may take.
    pub smtp_timeout: Duration,
    /// Emails, SMS and push one sender run claims, at most.
    pub batch_max: u32,
    /// The shop's HTTP gateway for SMS and push (`https://`, or `http://` with
    /// `webhook_allow_http`). `None`: SMS and push notifications fail at once with the reason
    /// "the notification gateway is not configured".
    pub gateway_url: Option<String>,
    /// The key of the gateway requests' `Allot-Signature` (HMAC-SHA256, as webhooks).
    pub gateway_secret: Option<crate::secret::Secret>,
}

pub const DEFAULT_SMTP_FROM: &str = "allot@localhost";

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            smtp_url: None,
            smtp_tls: None,
            smtp_ca_file: None,
            smtp_from: DEFAULT_SMTP_FROM.to_owned(),
            poll_interval: Duration::from_millis(500),
            attempts_max: 8,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            lease: Duration::from_secs(60),
            smtp_timeout: Duration::from_secs(10),
            batch_max: 4,
            gateway_url: None,
            gateway_secret: None,
        }
    }
}

/// A template as the API gives it: each part optional, each text a minijinja source.
#[derive(Debug, Clone, Default)]
pub struct TemplateInput {
    pub name: Option<String>,
    pub email: Option<(Option<String>, Option<String>)>,
    pub in_app: Option<(Option<String>, Option<String>)>,
    /// The SMS part's text.
    pub sms: Option<Option<String>>,
    /// The push part's title, body and url (optional).
    pub push: Option<PushInput>,
}

/// The push part of a template as the API gives it.
#[derive(Debug, Clone, Default)]
pub struct PushInput {
    pub title: Option<String>,
    pub body: Option<String>,
    pub url: Option<String>,
}

/// A direct send: to a user, on a channel, from a template with variables or from a subject
/// (title) and body given as they are.
#[derive(Debug, Clone)]
pub struct SendInput {
    pub user_id: Option<i64>,
    pub channel: Option<String>,
    pub template: Option<String>,
    pub variables: Option<serde_json::Value>,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// Push only: the link a tap opens.
    pub url: Option<String>,
}

/// A rule change as the API gives it.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub template: Option<String>,
    pub channels: Option<Vec<String>>,
    pub active: Option<bool>,
}

pub struct Notifications {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: NotificationSettings,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A variable the template names but the context lacks fails the rendering, instead of
    // sending a message with a hole in it.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Plain-text email and in-app text: no HTML escaping.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(TEMPLATE_RENDER_FUEL_MAX));
    env
}

fn engine_message(e: &minijinja::Error) -> String {
    // The engine's own words (kind and detail) with the line in plain text, rather than its
    // `(in name:line)` suffix.
    match (e.line(), e.detail()) {
        (Some(line), Some(detail)) => format!("line {line}: {}: {detail}", e.kind()),
        _ => e.to_string(),
    }
}

/// Checks that `source` parses, naming `field` if not.
fn check_source(field: &'static str, source: &str) -> Result<(), ServiceError> {
    if source.len() > TEMPLATE_SOURCE_MAX {
        return Err(invalid(
            field,
            format!("{field}: at most {TEMPLATE_SOURCE_MAX} bytes"),
        ));
    }
    let env = environment();
    env.template_from_named_str(field, source)
        .map(|_| ())
        .map_err(|e| {
            invalid(
                field,
                format!(
                    "{field}: the template does not parse at {}",
                    engine_message(&e)
                ),
            )
        })
}

/// Renders `source` with `context`; the engine's message on failure.
pub(crate) fn render(source: &str, context: &serde_json::Value) -> Result<String, String> {
    let env = environment();
    let out = env
        .render_str(
            source,
            minijinja::Value::from(minijinja::value::Serde(context)),
        )
        .map_err(|e| match e.kind() {
            minijinja::ErrorKind::OutOfFuel => format!(
                "the template took more than {TEMPLATE_RENDER_FUEL_MAX} steps to render (a loop \
                 too long or without end)"
            ),
            _ => engine_message(&e),
        })?;
    if out.len() > RENDERED_MAX {
        return Err(format!(
            "the rendered text is longer than {RENDERED_MAX} bytes"
        ));
    }
    Ok(out)
}

fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument {
        field,
        message: message.into(),
    }
}

fn required(field: &'static str, v: Option<String>) -> Result<String, ServiceError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid(field, format!("{field}: is required"))),
    }
}

/// The key of a template in a path: digits are an id, anything else a name.
pub fn template_key(raw: &str) -> TemplateKey {
    match raw.parse::<i64>() {
        Ok(id) => TemplateKey::Id(id),
        Err(_) => TemplateKey::Name(raw.to_owned()),
    }
}

/// The sources a template renders for one channel.
struct Sources<'a> {
    /// The subject (email) or title (in-app, push); empty for SMS.
    head: &'a str,
    body: &'a str,
    /// The push's url.
    link: Option<&'a str>,
}

/// What a channel's notification holds once rendered.
struct Rendered {
    head: String,
    body: String,
    link: Option<String>,
}

/// What a template renders for one channel, if it has that channel's part.
fn parts_for(template: &Template, channel: Channel) -> Option<Sources<'_>> {
    match channel {
        Channel::Email => template.email.as_ref().map(|e| Sources {
            head: &e.subject,
            body: &e.body,
            link: None,
        }),
        Channel::InApp => template.in_app.as_ref().map(|p| Sources {
            head: &p.title,
            body: &p.body,
            link: None,
        }),
        Channel::Sms => template.sms.as_ref().map(|p| Sources {
            head: "",
            body: &p.text,
            link: None,
        }),
        Channel::Push => template.push.as_ref().map(|p| Sources {
            head: &p.title,
            body: &p.body,
            link: p.url.as_deref(),
        }),
    }
}

/// Renders every part, or the first engine error.
fn render_parts(parts: Sources<'_>, context: &serde_json::Value) -> Result<Rendered, String> {
    Ok(Rendered {
        head: render(parts.head, context)?,
        body: render(parts.body, context)?,
        link: parts.link.map(|l| render(l, context)).transpose()?,
    })
}

/// Whether `template` has the part `channel` needs.
fn has_part(t: &NewTemplate, channel: Channel) -> bool {
    match channel {
        Channel::Email => t.email.is_some(),
        Channel::InApp => t.in_app.is_some(),
        Channel::Sms => t.sms.is_some(),
        Channel::Push => t.push.is_some(),
    }
}

/// What a preview renders: a template's parts as the API gives them (each optional) and the
/// variables of one message.
#[derive(Debug, Clone, Default)]
pub struct PreviewInput {
    pub email: Option<(Option<String>, Option<String>)>,
    pub in_app: Option<(Option<String>, Option<String>)>,
    pub sms: Option<Option<String>>,
    pub push: Option<PushInput>,
    pub variables: Option<serde_json::Value>,
}

/// The parts rendered: (subject or title, body) per channel given; the SMS text; the push's
/// title, body and url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub email: Option<(String, String)>,
    pub in_app: Option<(String, String)>,
    pub sms: Option<String>,
    pub push: Option<(String, String, Option<String>)>,
}

/// Renders one source as the notifier would, naming the field that fails.
fn preview_one(
    field: &'static str,
    source: String,
    context: &serde_json::Value,
) -> Result<String, ServiceError> {
    check_source(field, &source)?;
    render(&source, context)
        .map_err(|m| invalid(field, format!("{field}: the template fails at {m}")))
}

/// Renders one part's two sources as the notifier would, naming the field that fails.
fn preview_part(
    fields: (&'static str, &'static str),
    sources: (Option<String>, Option<String>),
    context: &serde_json::Value,
) -> Result<(String, String), ServiceError> {
    let mut out = Vec::with_capacity(2);
    for (field, source) in [(fields.0, sources.0), (fields.1, sources.1)] {
        let source = required(field, source)?;
        check_source(field, &source)?;
        let text = render(&source, context)
            .map_err(|m| invalid(field, format!("{field}: the template fails at {m}")))?;
        out.push(text);
    }
    let body = out.pop().unwrap_or_default();
    let head = out.pop().unwrap_or_default();
    Ok((head, body))
}

/// Renders a template's parts with `input.variables`, through the same engine, settings and
/// limits as a sent notification; nothing is stored or sent.
pub fn preview(input: PreviewInput) -> Result<Preview, ServiceError> {
    let context = match input.variables {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(v @ serde_json::Value::Object(_)) => v,
        Some(_) => return Err(invalid("variables", "variables: a JSON object")),
    };
    if input.email.is_none()
        && input.in_app.is_none()
        && input.sms.is_none()
        && input.push.is_none()
    {
        return Err(invalid(
            "email",
            "email, in_app, sms or push: a part to render is required",
        ));
    }
    let sms = match input.sms {
        None => None,
        Some(text) => Some(preview_one(
            "sms.text",
            required("sms.text", text)?,
            &context,
        )?),
    };
    let push = match input.push {
        None => None,
        Some(p) => {
            let (title, body) =
                preview_part(("push.title", "push.body"), (p.title, p.body), &context)?;
            let url = p
                .url
                .map(|u| preview_one("push.url", u, &context))
                .transpose()?;
            Some((title, body, url))
        }
    };
    Ok(Preview {
        email: input
            .email
            .map(|p| preview_part(("email.subject", "email.body"), p, &context))
            .transpose()?,
        in_app: input
            .in_app
            .map(|p| preview_part(("in_app.title", "in_app.body"), p, &context))
            .transpose()?,
        sms,
        push,
    })
}

impl Notifications {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: NotificationSettings,
    ) -> Self {
        Notifications {
            store,
            clock,
            settings,
        }
    }

    pub fn settings(&self) -> &NotificationSettings {
        &self.settings
    }

    fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    fn parse_template(input: TemplateInput) -> Result<NewTemplate, ServiceError> {
        let name = Name::parse_field(&required("name", input.name)?, "name")?;
        let email = match input.email {
            None => None,
            Some((subject, body)) => {
                let subject = required("email.subject", subject)?;
                let body = required("email.body", body)?;
                check_source("email.subject", &subject)?;
                check_source("email.body", &body)?;
                Some(EmailPart { subject, body })
            }
        };
        let in_app = match input.in_app {
            None => None,
            Some((title, body)) => {
                let title = required("in_app.title", title)?;
                let body = required("in_app.body", body)?;
                check_source("in_app.title", &title)?;
                check_source("in_app.body", &body)?;
                Some(InAppPart { title, body })
            }
        };
        let sms = match input.sms {
            None => None,
            Some(text) => {
                let text = required("sms.text", text)?;
                check_source("sms.text", &text)?;
                Some(SmsPart { text })
            }
        };
        let push = match input.push {
            None => None,
            Some(p) => {
                let title = required("push.title", p.title)?;
                let body = required("push.body", p.body)?;
                check_source("push.title", &title)?;
                check_source("push.body", &body)?;
                let url = match p.url {
                    Some(u) if !u.trim().is_empty() => {
                        check_source("push.url", &u)?;
                        Some(u)
                    }
                    _ => None,
                };
                Some(PushPart { title, body, url })
            }
        };
        if email.is_none() && in_app.is_none() && sms.is_none() && push.is_none() {
            return Err(invalid(
                "email",
                "email, in_app, sms or push: a template needs at least one channel's part",
            ));
        }
        Ok(NewTemplate {
            name: name.as_str().to_owned(),
            email,
            in_app,
            sms,
            push,
        })
    }

    pub async fn create_template(&self, input: TemplateInput) -> Result<Template, ServiceError> {
        let new = Self::parse_template(input)?;
        match self.store.create_template(new, self.now()).await? {
            TemplateWrite::Saved(t) => Ok(*t),
            TemplateWrite::NameTaken => Err(ServiceError::TemplateNameTaken),
            TemplateWrite::NotFound => Err(ServiceError::NotFound { what: "template" }),
        }
    }

    pub async fn templates(&self) -> Result<Vec<Template>, ServiceError> {
        Ok(self.store.templates().await?)
    }

    pub async fn template(&self, key: &str) -> Result<Template, ServiceError> {
        self.store
            .template(template_key(key))
            .await?
            .ok_or(ServiceError::NotFound { what: "template" })
    }

    /// Replaces a template. A rule that uses it must still find a part for its channels.
    pub async fn update_template(
        &self,
        key: &str,
        input: TemplateInput,
    ) -> Result<Template, ServiceError> {
        let new = Self::parse_template(input)?;
        let current = self.template(key).await?;
        for rule in self.store.rules().await? {
            if rule.template != current.name {
                continue;
            }
            for channel in &rule.channels {
                if !has_part(&new, *channel) {
                    return Err(invalid(
                        channel.as_str(),
                        format!(
                            "{channel}: rule {} sends this template by {channel}; keep that part",
                            rule.name
                        ),
                    ));
                }
            }
        }
        match self
            .store
            .update_template(TemplateKey::Id(current.id), new, self.now())
            .await?
        {
            TemplateWrite::Saved(t) => Ok(*t),
            TemplateWrite::NameTaken => Err(ServiceError::TemplateNameTaken),
            TemplateWrite::NotFound => Err(ServiceError::NotFound { what: "template" }),
        }
    }

    pub async fn delete_template(&self, key: &str) -> Result<(), ServiceError> {
        match self.store.delete_template(template_key(key)).await? {
            TemplateDelete::Deleted => Ok(()),
            TemplateDelete::NotFound => Err(ServiceError::NotFound { what: "template" }),
            TemplateDelete::InUse { rule } => Err(ServiceError::TemplateInUse { rule }),
        }
    }

    pub async fn rules(&self) -> Result<Vec<Rule>, ServiceError> {
        Ok(self.store.rules().await?)
    }

    pub async fn update_rule(&self, name: &str, input: RuleInput) -> Result<Rule, ServiceError> {
        let rules = self.store.rules().await?;
        let rule = rules
            .iter()
            .find(|r| r.name == name)
            .ok_or(ServiceError::NotFound { what: "rule" })?;
        let channels = match &input.channels {
            None => None,
            Some(list) => {
                let mut out: Vec<Channel> = Vec::new();
                for c in list {
                    let c = Channel::parse_field(c, "channels")?;
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
                if out.is_empty() {
                    return Err(invalid("channels", "channels: name at least one channel"));
                }
                Some(out)
            }
        };
        let template_name = input.template.clone().unwrap_or(rule.template.clone());
        let template = self
            .store
            .template(TemplateKey::Name(template_name.clone()))
            .await?
            .ok_or_else(|| {
                invalid(
                    "template",
                    format!("template: no template named {template_name:?}"),
                )
            })?;
        for c in channels.as_deref().unwrap_or(&rule.channels) {
            if parts_for(&template, *c).is_none() {
                return Err(invalid(
                    "channels",
                    format!("channels: template {template_name} has no {c} part"),
                ));
            }
        }
        let update = RuleUpdate {
            template: input.template,
            channels,
            active: input.active,
        };
        self.store
            .update_rule(name.to_owned(), update, self.now())
            .await?
            .ok_or(ServiceError::NotFound { what: "rule" })
    }

    pub async fn preferences(&self, user: AccountId) -> Result<Preferences, ServiceError> {
        Ok(self.store.preferences(user).await?)
    }

    /// Replaces the user's preferences; every per-rule entry must name a rule.
    pub async fn set_preferences(
        &self,
        user: AccountId,
        preferences: Preferences,
    ) -> Result<Preferences, ServiceError> {
        if !preferences.rules.is_empty() {
            let rules = self.store.rules().await?;
            for name in preferences.rules.keys() {
                if !rules.iter().any(|r| &r.name == name) {
                    return Err(invalid("rules", format!("rules: no rule named {name:?}")));
                }
            }
        }
        self.store
            .set_preferences(user, preferences.clone(), self.now())
            .await?;
        Ok(preferences)
    }

    /// Sends one notification directly (staff). Preferences are not applied: a direct send is
    /// a deliberate act of a person, not a rule.
    pub async fn send(&self, input: SendInput) -> Result<Notification, ServiceError> {
        let user_id = input
            .user_id
            .ok_or_else(|| invalid("user_id", "user_id: is required"))?;
        let channel = Channel::parse_field(&required("channel", input.channel)?, "channel")?;
        let user = self
            .store
            .user_by_id(AccountId::new(user_id))
            .await?
            .filter(|u| u.active)
            .ok_or_else(|| invalid("user_id", format!("user_id: no active user {user_id}")))?;
        if channel == Channel::Sms && self.store.preferences(user.id).await?.phone.is_none() {
            return Err(invalid(
                "user_id",
                format!("user_id: user {user_id} has no phone number for SMS (preferences.phone)"),
            ));
        }
        let (template, subject, body, link) = match input.template {
            Some(name) => {
                if input.subject.is_some() || input.body.is_some() || input.url.is_some() {
                    return Err(invalid(
                        "template",
                        "template: give either a template (with variables) or subject and body",
                    ));
                }
                let template = self
                    .store
                    .template(TemplateKey::Name(name.clone()))
                    .await?
                    .ok_or_else(|| {
                        invalid("template", format!("template: no template {name:?}"))
                    })?;
                let parts = parts_for(&template, channel).ok_or_else(|| {
                    invalid(
                        "channel",
                        format!("channel: template {name} has no {channel} part"),
                    )
                })?;
                let mut context = match input.variables {
                    None => serde_json::json!({}),
                    Some(v @ serde_json::Value::Object(_)) => v,
                    Some(_) => {
                        return Err(invalid("variables", "variables: must be a JSON object"));
                    }
                };
                context["user"] = serde_json::json!({
                    "id": user.id.get(),
                    "email": user.email.as_str(),
                });
                let r = render_parts(parts, &context).map_err(|e| {
                    invalid(
                        "variables",
                        format!("variables: the template does not render: {e}"),
                    )
                })?;
                (Some(name), r.head, r.body, r.link)
            }
            None => {
                if input.url.is_some() && channel != Channel::Push {
                    return Err(invalid("url", "url: only a push has a url"));
                }
                // An SMS is its body alone.
                let subject = match channel {
                    Channel::Sms => String::new(),
                    _ => required("subject", input.subject)?,
                };
                (None, subject, required("body", input.body)?, input.url)
            }
        };
        let new = NewNotification {
            user: user.id,
            channel,
            template,
            rule: None,
            event_seq: None,
            subject,
            body,
            link,
            render_error: None,
        };
        Ok(self.store.send_notification(new, self.now()).await?)
    }

    pub async fn status(&self, id: i64) -> Result<Notification, ServiceError> {
        self.store
            .notification(id)
            .await?
            .ok_or(ServiceError::NotFound {
                what: "notification",
            })
    }

    /// The outbox, newest first: every recipient's email, SMS and push notifications, of one
    /// status if given.
    pub async fn outbox(
        &self,
        status: Option<allot_domain::notification::DeliveryStatus>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Notification>, ServiceError> {
        Ok(self
            .store
            .outbox(allot_storage::notification::OutboxQuery {
                status,
                before,
                limit,
            })
            .await?)
    }

    pub async fn inbox(
        &self,
        user: AccountId,
        unread_only: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Notification>, ServiceError> {
        Ok(self
            .store
            .inbox(InboxQuery {
                user,
                unread_only,
                before,
                limit: limit.clamp(1, INBOX_PAGE_MAX),
            })
            .await?)
    }

    /// Marks one of the user's own in-app notifications read; anyone else's is not found.
    pub async fn mark_read(&self, user: AccountId, id: i64) -> Result<Notification, ServiceError> {
        self.store
            .mark_read(user, id, self.now())
            .await?
            .ok_or(ServiceError::NotFound {
                what: "notification",
            })
    }

    /// One run of the rules consumer as `owner`: claims the consumer, reads the events after
    /// its cursor, makes their notifications and commits them with the new cursor in one
    /// transaction. Answers how many events it passed (0: nothing new, or another instance
    /// holds the consumer).
    pub async fn consume_once(&self, owner: &str) -> Result<usize, ServiceError> {
        let lease_ms = self.settings.lease.as_millis() as i64;
        let Some(cursor) = self
            .store
            .claim_consumer(owner.to_owned(), self.now(), lease_ms)
            .await?
        else {
            return Ok(0);
        };
        let events = self
            .store
            .events(EventQuery {
                after: cursor,
                limit: EVENTS_PER_RUN_MAX,
                kind: None,
            })
            .await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(0);
        };
        let rules: Vec<Rule> = self
            .store
            .rules()
            .await?
            .into_iter()
            .filter(|r| r.active)
            .collect();
        let mut out = Vec::new();
        for event in &events {
            for rule in rules.iter().filter(|r| r.event_type == event.kind) {
                self.apply(rule, event, &mut out).await?;
            }
        }
        let passed = events.len();
        let committed = self
            .store
            .commit_notifications(owner.to_owned(), cursor, last, out, self.now())
            .await?;
        if !committed {
            tracing::info!(
                "the notification consumer moved on elsewhere; this run's work is dropped"
            );
            return Ok(0);
        }
        Ok(passed)
    }

    /// The notifications `rule` makes of `event`, pushed to `out`.
    async fn apply(
        &self,
        rule: &Rule,
        event: &allot_storage::Event,
        out: &mut Vec<NewNotification>,
    ) -> Result<(), ServiceError> {
        let payload: serde_json::Value =
            serde_json::from_str(&event.payload).unwrap_or(serde_json::Value::Null);
        let recipients: Vec<AccountId> = match rule.recipients {
            Recipients::Role(role) => self.store.active_users_with_role(role).await?,
            Recipients::OrderCustomer => {
                let Some(order_id) = payload.get("order_id").and_then(|v| v.as_i64()) else {
                    return Ok(());
                };
                let customer = match self.store.order(order_id).await? {
                    Some(order) => order.customer.parse::<i64>().ok(),
                    None => None,
                };
                customer.map(AccountId::new).into_iter().collect()
            }
        };
        if recipients.is_empty() {
            return Ok(());
        }
        let template = self
            .store
            .template(TemplateKey::Name(rule.template.clone()))
            .await?;
        for user_id in recipients {
            let Some(user) = self.store.user_by_id(user_id).await? else {
                continue;
            };
            if !user.active {
                continue;
            }
            let prefs = self.store.preferences(user.id).await?;
            let mut context = match &payload {
                serde_json::Value::Object(_) => payload.clone(),
                _ => serde_json::json!({}),
            };
            context["user"] =
                serde_json::json!({"id": user.id.get(), "email": user.email.as_str()});
            context["event"] = serde_json::json!({
                "seq": event.seq,
                "type": event.kind,
                "occurred_at_ms": event.occurred_at.as_millis(),
            });
            for channel in &rule.channels {
                if !prefs.allows(Some(&rule.name), *channel) {
                    continue;
                }
                // No number on file: the user cannot take SMS, whatever the switch says.
                if *channel == Channel::Sms && prefs.phone.is_none() {
                    continue;
                }
                let rendered = match template.as_ref().and_then(|t| parts_for(t, *channel)) {
                    Some(parts) => render_parts(parts, &context),
                    None => Err(format!("template {} has no {channel} part", rule.template)),
                };
                let (subject, body, link, render_error) = match rendered {
                    Ok(r) => (r.head, r.body, r.link, None),
                    Err(e) => (
                        String::new(),
                        String::new(),
                        None,
                        Some(format!("rendering failed: {e}")),
                    ),
                };
                out.push(NewNotification {
                    user: user.id,
                    channel: *channel,
                    template: Some(rule.template.clone()),
                    rule: Some(rule.name.clone()),
                    event_seq: Some(event.seq),
                    subject,
                    body,
                    link,
                    render_error,
                });
            }
        }
        Ok(())
    }

    /// One run of the sender: claims due emails, SMS and push and hands each to `send` with
    /// its address (the email address, the phone number, or the user id for push, whose
    /// devices the gateway knows), recording each outcome as soon as it is known. Answers how
    /// many it handled.
    pub async fn deliver_due_once<F, Fut>(&self, send: F) -> Result<usize, ServiceError>
    where
        F: Fn(String, Notification) -> Fut,
        Fut: std::future::Future<Output = Result<(), SendFailure>>,
    {
        let lease_ms = self.settings.lease.as_millis() as i64;
        let claimed = self
            .store
            .claim_due_outbound(self.now(), lease_ms, self.settings.batch_max)
            .await?;
        let handled = claimed.len();
        for n in claimed {
            let outcome = match self.store.user_by_id(n.user).await? {
                Some(user) if user.active => match n.channel {
                    Channel::Sms => match self.store.preferences(user.id).await?.phone {
                        Some(phone) => send(phone.as_str().to_owned(), n.clone()).await,
                        None => Err(SendFailure::Permanent(
                            "the user has no phone number on file any more".to_owned(),
                        )),
                    },
                    Channel::Push => send(user.id.get().to_string(), n.clone()).await,
                    Channel::Email | Channel::InApp => {
                        send(user.email.as_str().to_owned(), n.clone()).await
                    }
                },
                Some(_) => Err(SendFailure::Permanent("the user is inactive".to_owned())),
                None => Err(SendFailure::Permanent("the user does not exist".to_owned())),
            };
            let attempt = match outcome {
                Ok(()) => Attempt::Sent,
                Err(SendFailure::Permanent(reason)) => {
                    tracing::warn!(
                        notification = n.id,
                        error = %allot_storage::notification::redact_addresses(&reason),
                        channel = n.channel.as_str(),
                        "notification given up"
                    );
                    Attempt::Failed {
                        reason,
                        retry_at: None,
                    }
                }
                Err(SendFailure::Retry(reason)) => {
                    let attempts = n.attempts + 1;
                    let delay = allot_domain::notification::retry_delay_ms(
                        attempts,
                        self.settings.attempts_max,
                        self.settings.retry_base.as_millis() as u64,
                        self.settings.retry_max.as_millis() as u64,
                    );
                    tracing::warn!(
                        notification = n.id,
                        attempts,
                        retry_in_ms = delay,
                        error = %allot_storage::notification::redact_addresses(&reason),
                        channel = n.channel.as_str(),
                        "notification not sent"
                    );
                    Attempt::Failed {
                        reason,
                        retry_at: delay.map(|d| self.now().plus_millis(d as i64)),
                    }
                }
            };
            self.store.record_attempt(n.id, attempt, self.now()).await?;
        }
        Ok(handled)
    }
}

/// Why a delivery attempt failed: worth retrying (the server is down, refused for now) or
/// not (no SMTP configured, an unusable address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    Retry(String),
    Permanent(String),
}

/// The switches of a preferences document, for transports: a switch not given takes its
/// default ([`ChannelSwitches::DEFAULT`]: SMS off, the others on).
pub fn switches(
    email: Option<bool>,
    in_app: Option<bool>,
    sms: Option<bool>,
    push: Option<bool>,
) -> ChannelSwitches {
    let d = ChannelSwitches::DEFAULT;
    ChannelSwitches {
        email: email.unwrap_or(d.email),
        in_app: in_app.unwrap_or(d.in_app),
        sms: sms.unwrap_or(d.sms),
        push: push.unwrap_or(d.push),
    }
}

/// The phone number of a preferences document: absent or null, none.
pub fn phone(raw: Option<&str>) -> Result<Option<Phone>, ServiceError> {
    Ok(raw.map(|p| Phone::parse_field(p, "phone")).transpose()?)
}

/// Whether a notification's status will still change (a failed one with a retry planned).
pub fn will_retry(n: &Notification) -> bool {
    matches!(n.status, DeliveryStatus::Queued | DeliveryStatus::Failed)
        && n.next_attempt_at.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_that_does_not_parse_is_refused_with_the_field_and_line() {
        let err = check_source("email.body", "Hello\n{{ user.email ").unwrap_err();
        let ServiceError::InvalidArgument { field, message } = err else {
            panic!("not invalid_argument");
        };
        assert_eq!(field, "email.body");
        assert!(message.contains("line 2"), "{message}");
        let err = check_source("in_app.body", "{{ oops ").unwrap_err();
        assert_eq!(
            err.to_string(),
            "in_app.body: the template does not parse at line 1: syntax error: unexpected end \
             of input, expected end of variable block"
        );
    }

    #[test]
    fn a_template_that_never_ends_fails_with_a_clear_error() {
        let ctx = serde_json::json!({});
        let endless = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}\
                       {% endfor %}";
        let started = std::time::Instant::now();
        let err = render(endless, &ctx).unwrap_err();
        assert!(err.contains("steps to render"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let recursive = "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}";
        assert!(render(recursive, &ctx).is_err());
        // An ordinary template stays well inside the bound.
        let lines = serde_json::json!({"lines": (0..200).collect::<Vec<_>>()});
        assert!(render("{% for l in lines %}line {{ l }}\n{% endfor %}", &lines).is_ok());
    }

    #[test]
    fn a_missing_variable_fails_the_rendering() {
        let ctx = serde_json::json!({"order_id": 7});
        assert_eq!(render("order {{ order_id }}", &ctx).unwrap(), "order 7");
        let err = render("order {{ order_id }} for {{ name }}", &ctx).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        assert_eq!(
            render("<{{ x }}>", &serde_json::json!({"x": "<b>"})).unwrap(),
            "<<b>>"
        );
    }
}

//! Notifications (issue 8): templates, rules, preferences, the event-log consumer's cursor and
//! the notifications themselves, which are the outbox of the email sender and the users'
//! inboxes. Every change of a notification's delivery state appends its event
//! (`NotificationQueued`, `NotificationSent`, `NotificationFailed`) in the same transaction.

use std::collections::BTreeMap;

use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Role};
use allot_domain::event::{EventType, NewEvent};
use allot_domain::notification::{Channel, DeliveryStatus, Phone};
use async_trait::async_trait;

use crate::StorageError;
use crate::crypto::{Cipher, places};

/// The email part of a template: minijinja sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailPart {
    pub subject: String,
    pub body: String,
}

/// The in-app part of a template: minijinja sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InAppPart {
    pub title: String,
    pub body: String,
}

/// The SMS part of a template: a minijinja source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPart {
    pub text: String,
}

/// The push part of a template: minijinja sources; `url` is the link a tap opens (optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPart {
    pub title: String,
    pub body: String,
    pub url: Option<String>,
}

/// A template to store; the service has checked that every source parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplate {
    pub name: String,
    pub email: Option<EmailPart>,
    pub in_app: Option<InAppPart>,
    pub sms: Option<SmsPart>,
    pub push: Option<PushPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: i64,
    pub name: String,
    pub email: Option<EmailPart>,
    pub in_app: Option<InAppPart>,
    pub sms: Option<SmsPart>,
    pub push: Option<PushPart>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A template by its id or its name (the API accepts either in the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateKey {
    Id(i64),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateWrite {
    /// Boxed: a template with its four parts is far larger than the refusals.
    Saved(Box<Template>),
    NotFound,
    NameTaken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateDelete {
    Deleted,
    NotFound,
    /// A rule names the template; it stays.
    InUse {
        rule: String,
    },
}

/// Who a rule notifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    /// Every active user with the role.
    Role(Role),
    /// The customer of the event's order (an order's `customer` is the account id).
    OrderCustomer,
}

impl Recipients {
    pub fn as_text(self) -> String {
        match self {
            Recipients::Role(r) => format!("role:{}", r.as_str()),
            Recipients::OrderCustomer => "order_customer".to_owned(),
        }
    }

    pub fn parse(raw: &str) -> Option<Recipients> {
        if raw == "order_customer" {
            return Some(Recipients::OrderCustomer);
        }
        raw.strip_prefix("role:")
            .and_then(|r| Role::parse(r).ok())
            .map(Recipients::Role)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    pub event_type: String,
    pub recipients: Recipients,
    pub template: String,
    pub channels: Vec<Channel>,
    pub active: bool,
    pub updated_at: UnixMillis,
}

/// What a rule update changes; `None` keeps the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleUpdate {
    pub template: Option<String>,
    pub channels: Option<Vec<Channel>>,
    pub active: Option<bool>,
}

/// A user's switches for the four channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSwitches {
    pub email: bool,
    pub in_app: bool,
    pub sms: bool,
    pub push: bool,
}

impl ChannelSwitches {
    /// Until a user says otherwise: email, in-app and push on; SMS off. A text message costs
    /// the shop money and reaches a phone, which takes the user's explicit consent (opt-in);
    /// push reaches only devices the user registered with the shop's app, which was the
    /// consent, and the device lets them silence it.
    pub const DEFAULT: ChannelSwitches = ChannelSwitches {
        email: true,
        in_app: true,
        sms: false,
        push: true,
    };

    pub fn allows(self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email,
            Channel::InApp => self.in_app,
            Channel::Sms => self.sms,
            Channel::Push => self.push,
        }
    }
}

/// A user's preferences: the channel switches, overrides per rule (by rule name), and the
/// phone number SMS go to (none: no SMS, whatever the switches say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub channels: ChannelSwitches,
    pub rules: BTreeMap<String, ChannelSwitches>,
    pub phone: Option<Phone>,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            channels: ChannelSwitches::DEFAULT,
            rules: BTreeMap::new(),
            phone: None,
        }
    }
}

impl Preferences {
    /// Whether the user takes notifications of `rule` (None: a direct send) on `channel`.
    pub fn allows(&self, rule: Option<&str>, channel: Channel) -> bool {
        rule.and_then(|r| self.rules.get(r))
            .copied()
            .unwrap_or(self.channels)
            .allows(channel)
    }
}

/// A notification to store. In-app ones are delivered by being stored (status `sent`); email,
/// SMS and push ones are queued for the sender; one whose rendering failed is stored `failed`
/// with the reason, so the failure is visible instead of lost. `subject` is the email's
/// subject or the in-app or push title (empty for SMS); `link` the push's url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub user: AccountId,
    pub channel: Channel,
    pub template: Option<String>,
    pub rule: Option<String>,
    pub event_seq: Option<i64>,
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
    pub render_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub user: AccountId,
    pub channel: Channel,
    pub template: Option<String>,
    pub rule: Option<String>,
    pub event_seq: Option<i64>,
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<UnixMillis>,
    pub read_at: Option<UnixMillis>,
    pub sent_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A page of the outbox (email, SMS and push), newest first: ids below `before`, of one status if given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxQuery {
    pub status: Option<DeliveryStatus>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// A page of a user's inbox (in-app notifications), newest first: ids below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxQuery {
    pub user: AccountId,
    pub unread_only: bool,
    pub before: Option<i64>,
    pub limit: u32,
}

/// The outcome of one delivery attempt of an email, SMS or push notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The SMTP server (email) or the gateway (SMS, push) accepted the message.
    Sent,
    /// Failed; try again at `retry_at`, or never (given up) when `None`.
    Failed {
        reason: String,
        retry_at: Option<UnixMillis>,
    },
}

/// The name of the one event-log consumer that applies the rules.
pub const RULES_CONSUMER: &str = "rules";

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Stores a new template; `NameTaken` if the name is in use.
    async fn create_template(
        &self,
        new: NewTemplate,
        now: UnixMillis,
    ) -> Result<TemplateWrite, StorageError>;

    async fn templates(&self) -> Result<Vec<Template>, StorageError>;

    async fn template(&self, key: TemplateKey) -> Result<Option<Template>, StorageError>;

    /// Replaces the template's name and parts; rules that use it follow a rename.
    async fn update_template(
        &self,
        key: TemplateKey,
        new: NewTemplate,
        now: UnixMillis,
    ) -> Result<TemplateWrite, StorageError>;

    async fn delete_template(&self, key: TemplateKey) -> Result<TemplateDelete, StorageError>;

    async fn rules(&self) -> Result<Vec<Rule>, StorageError>;

    /// Changes a rule; `None` if there is no rule of that name. The caller has checked that
    /// the template exists and has a part for every channel.
    async fn update_rule(
        &self,
        name: String,
        update: RuleUpdate,
        now: UnixMillis,
    ) -> Result<Option<Rule>, StorageError>;

    async fn preferences(&self, user: AccountId) -> Result<Preferences, StorageError>;

    /// Replaces the user's preferences.
    async fn set_preferences(
        &self,
        user: AccountId,
        preferences: Preferences,
        now: UnixMillis,
    ) -> Result<(), StorageError>;

    /// The active users with the role, by id.
    async fn active_users_with_role(&self, role: Role) -> Result<Vec<AccountId>, StorageError>;

    /// Takes or renews the lease on the rules consumer for `owner` until `now + lease_ms`,
    /// unless another owner holds an unexpired lease; answers the cursor when held.
    async fn claim_consumer(
        &self,
        owner: String,
        now: UnixMillis,
        lease_ms: i64,
    ) -> Result<Option<i64>, StorageError>;

    /// In one transaction: moves the rules consumer's cursor from `from_seq` to `to_seq` if
    /// `owner` still holds it there, and stores `notifications` with their events. False (and
    /// nothing stored) if the cursor moved or the lease passed to another owner meanwhile.
    async fn commit_notifications(
        &self,
        owner: String,
        from_seq: i64,
        to_seq: i64,
        notifications: Vec<NewNotification>,
        now: UnixMillis,
    ) -> Result<bool, StorageError>;

    /// Stores one notification sent directly (not by a rule), with its events.
    async fn send_notification(
        &self,
        new: NewNotification,
        now: UnixMillis,
    ) -> Result<Notification, StorageError>;

    async fn notification(&self, id: i64) -> Result<Option<Notification>, StorageError>;

    async fn inbox(&self, query: InboxQuery) -> Result<Vec<Notification>, StorageError>;

    /// The outbox: every recipient's email, SMS and push notifications, newest first, filtered
    /// by status: the `notifications_outbox` index serves a status, the primary key the whole
    /// list.
    async fn outbox(&self, query: OutboxQuery) -> Result<Vec<Notification>, StorageError>;

    /// Marks the user's in-app notification read (once; later calls keep the first time);
    /// `None` if it is not theirs or not in-app.
    async fn mark_read(
        &self,
        user: AccountId,
        id: i64,
        now: UnixMillis,
    ) -> Result<Option<Notification>, StorageError>;

    /// Claims up to `limit` email, SMS and push notifications due at `now` that no sender
    /// holds, for `lease_ms`: a sender that dies leaves them to be claimed again after the
    /// lease.
    async fn claim_due_outbound(
        &self,
        now: UnixMillis,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StorageError>;

    /// Records an attempt of a claimed notification and releases the claim, with its events.
    async fn record_attempt(
        &self,
        id: i64,
        attempt: Attempt,
        now: UnixMillis,
    ) -> Result<(), StorageError>;
}

/// The rendered texts of notification `id` as its row holds them: subject (or title), body and
/// last error sealed under the data key, each bound to the row and column (a template may
/// render an email or an address; an SMTP error may quote one).
pub(crate) struct SealedTexts {
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
    pub last_error: Option<String>,
}

const SUBJECT: &str = "notifications.subject";
const BODY: &str = "notifications.body";
const LINK: &str = "notifications.link";
const LAST_ERROR: &str = "notifications.last_error";
const PHONE: &str = "notification_phones.phone";

/// A user's phone number sealed, bound to the user.
pub(crate) fn seal_phone(cipher: &Cipher, user: AccountId, phone: &Phone) -> String {
    cipher.seal_str(
        phone.as_str(),
        places::notification(PHONE, &user.get().to_string()),
    )
}

pub(crate) fn open_phone(
    cipher: &Cipher,
    user: AccountId,
    sealed: &str,
) -> Result<Phone, StorageError> {
    let plain = cipher.open_string(sealed, places::notification(PHONE, &user.get().to_string()))?;
    Phone::parse_field(&plain, "phone")
        .map_err(|_| StorageError::Corrupt(format!("stored phone of user {}", user.get())))
}

pub(crate) fn seal_error(cipher: &Cipher, id: i64, error: &str) -> String {
    cipher.seal_str(error, places::notification(LAST_ERROR, &id.to_string()))
}

pub(crate) fn seal_texts(cipher: &Cipher, id: i64, n: &NewNotification) -> SealedTexts {
    let row = id.to_string();
    SealedTexts {
        subject: cipher.seal_str(&n.subject, places::notification(SUBJECT, &row)),
        body: cipher.seal_str(&n.body, places::notification(BODY, &row)),
        link: n
            .link
            .as_deref()
            .map(|l| cipher.seal_str(l, places::notification(LINK, &row))),
        last_error: n.render_error.as_deref().map(|e| seal_error(cipher, id, e)),
    }
}

/// The notification with its texts opened (rows hold them sealed).
pub(crate) fn open_texts(
    cipher: &Cipher,
    mut n: Notification,
) -> Result<Notification, StorageError> {
    let row = n.id.to_string();
    n.subject = cipher.open_string(&n.subject, places::notification(SUBJECT, &row))?;
    n.body = cipher.open_string(&n.body, places::notification(BODY, &row))?;
    n.link = n
        .link
        .map(|l| cipher.open_string(&l, places::notification(LINK, &row)))
        .transpose()?;
    n.last_error = n
        .last_error
        .map(|e| cipher.open_string(&e, places::notification(LAST_ERROR, &row)))
        .transpose()?;
    Ok(n)
}

/// The initial state of a notification being stored.
pub(crate) struct Initial {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<i64>,
    pub sent_at: Option<i64>,
}

pub(crate) fn initial(n: &NewNotification, now: UnixMillis) -> Initial {
    match (&n.render_error, n.channel) {
        (Some(_), _) => Initial {
            status: DeliveryStatus::Failed,
            next_attempt_at: None,
            sent_at: None,
        },
        (None, Channel::InApp) => Initial {
            status: DeliveryStatus::Sent,
            next_attempt_at: None,
            sent_at: Some(now.as_millis()),
        },
        (None, Channel::Email | Channel::Sms | Channel::Push) => Initial {
            status: DeliveryStatus::Queued,
            next_attempt_at: Some(now.as_millis()),
            sent_at: None,
        },
    }
}

/// The events of storing `n` as notification `id`: queued (with its channel's request for
/// email, SMS and push), then sent and delivered (in-app) or failed (a rendering error).
pub(crate) fn stored_events(
    id: i64,
    n: &NewNotification,
    now: UnixMillis,
    actor: Option<&'static str>,
) -> Vec<NewEvent> {
    let make = |kind: EventType, payload: serde_json::Value| match actor {
        Some(a) => NewEvent::by(a, kind, now, payload.to_string()),
        None => NewEvent::api(kind, now, payload.to_string()),
    };
    let queued = serde_json::json!({
        "notification_id": id,
        "user_id": n.user.get(),
        "channel": n.channel.as_str(),
        "template": n.template,
        "rule": n.rule,
        "event_seq": n.event_seq,
    });
    let mut events = vec![make(EventType::NotificationQueued, queued.clone())];
    if let Some(kind) = requested_event(n.channel) {
        events.push(make(kind, queued));
    }
    match (&n.render_error, n.channel) {
        (Some(reason), _) => events.push(make(
            EventType::NotificationFailed,
            failed_payload(id, n.user.get(), n.channel, 0, reason, None),
        )),
        (None, Channel::InApp) => {
            let sent = sent_payload(id, n.user.get(), n.channel, 0);
            events.push(make(EventType::NotificationSent, sent.clone()));
            events.push(make(EventType::NotificationDelivered, sent));
        }
        (None, Channel::Email | Channel::Sms | Channel::Push) => {}
    }
    events
}

/// The design's event of a notification queued for an outbound channel (none for in-app,
/// which is delivered by being stored).
fn requested_event(channel: Channel) -> Option<EventType> {
    match channel {
        Channel::Email => Some(EventType::EmailNotificationRequested),
        Channel::Sms => Some(EventType::SmsNotificationRequested),
        Channel::Push => Some(EventType::PushNotificationRequested),
        Channel::InApp => None,
    }
}

/// `text` with every email address in it (a run of address characters around an `@`, with
/// something on both sides) replaced by `[address]`: a failure reason goes into the event log
/// and the logs, which hold no personal data, while the notification keeps it sealed. An SMTP
/// server's refusal may quote the recipient (`550 5.1.1 <ann@example.com>: no such user`).
pub fn redact_addresses(text: &str) -> String {
    fn local(c: char) -> bool {
        c.is_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c)
    }
    fn domain(c: char) -> bool {
        c.is_alphanumeric() || c == '.' || c == '-' || c == '[' || c == ']' || c == ':'
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '@' {
            let mut start = i;
            while start > 0 && local(chars[start - 1]) {
                start -= 1;
            }
            let mut end = i + 1;
            while end < chars.len() && domain(chars[end]) {
                end += 1;
            }
            // Trailing dots and colons end a sentence or a field, not the domain.
            while end > i + 1 && matches!(chars[end - 1], '.' | ':') {
                end -= 1;
            }
            let kept = i - start;
            if kept > 0 && end > i + 1 {
                // The local part was copied already: take it back.
                for _ in 0..kept {
                    out.pop();
                }
                out.push_str("[address]");
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

pub(crate) fn sent_payload(
    id: i64,
    user: i64,
    channel: Channel,
    attempts: u32,
) -> serde_json::Value {
    serde_json::json!({
        "notification_id": id,
        "user_id": user,
        "channel": channel.as_str(),
        "attempts": attempts,
    })
}

pub(crate) fn failed_payload(
    id: i64,
    user: i64,
    channel: Channel,
    attempts: u32,
    reason: &str,
    retry_at: Option<i64>,
) -> serde_json::Value {
    serde_json::json!({
        "notification_id": id,
        "user_id": user,
        "channel": channel.as_str(),
        "attempts": attempts,
        "reason": redact_addresses(reason),
        "next_attempt_at_ms": retry_at,
        "gave_up": retry_at.is_none(),
    })
}

/// The events of a recorded attempt: sent and delivered, or failed.
pub(crate) fn attempt_events(
    id: i64,
    user: i64,
    channel: Channel,
    attempts: u32,
    attempt: &Attempt,
    now: UnixMillis,
) -> Vec<NewEvent> {
    use allot_domain::event::ACTOR_NOTIFIER;
    match attempt {
        Attempt::Sent => {
            let payload = sent_payload(id, user, channel, attempts).to_string();
            vec![
                NewEvent::by(
                    ACTOR_NOTIFIER,
                    EventType::NotificationSent,
                    now,
                    payload.clone(),
                ),
                NewEvent::by(
                    ACTOR_NOTIFIER,
                    EventType::NotificationDelivered,
                    now,
                    payload,
                ),
            ]
        }
        Attempt::Failed { reason, retry_at } => vec![NewEvent::by(
            ACTOR_NOTIFIER,
            EventType::NotificationFailed,
            now,
            failed_payload(
                id,
                user,
                channel,
                attempts,
                reason,
                retry_at.map(UnixMillis::as_millis),
            )
            .to_string(),
        )],
    }
}

/// The event of a template's creation, change or deletion: its id, name and channels (no
/// sources: they can be long; read the template).
pub(crate) fn template_event(kind: EventType, t: &Template, now: UnixMillis) -> NewEvent {
    let channels: Vec<&str> = [
        t.email.as_ref().map(|_| "email"),
        t.in_app.as_ref().map(|_| "in_app"),
        t.sms.as_ref().map(|_| "sms"),
        t.push.as_ref().map(|_| "push"),
    ]
    .into_iter()
    .flatten()
    .collect();
    NewEvent::api(
        kind,
        now,
        serde_json::json!({"template_id": t.id, "name": t.name, "channels": channels}).to_string(),
    )
}

pub(crate) fn rule_event(r: &Rule, now: UnixMillis) -> NewEvent {
    NewEvent::api(
        EventType::NotificationRuleUpdated,
        now,
        serde_json::json!({
            "name": r.name,
            "template": r.template,
            "channels": r.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "active": r.active,
        })
        .to_string(),
    )
}

pub(crate) fn preferences_event(user: AccountId, p: &Preferences, now: UnixMillis) -> NewEvent {
    let switches = |s: &ChannelSwitches| serde_json::json!({"email": s.email, "in_app": s.in_app, "sms": s.sms, "push": s.push});
    let rules: serde_json::Map<String, serde_json::Value> = p
        .rules
        .iter()
        .map(|(k, v)| (k.clone(), switches(v)))
        .collect();
    NewEvent::api(
        EventType::NotificationPreferencesUpdated,
        now,
        serde_json::json!({
            "user_id": user.get(),
            "email": p.channels.email,
            "in_app": p.channels.in_app,
            "sms": p.channels.sms,
            "push": p.channels.push,
            // Whether a number is on file; never the number (personal data).
            "phone_set": p.phone.is_some(),
            "rules": rules,
        })
        .to_string(),
    )
}

pub(crate) fn read_event(id: i64, user: AccountId, now: UnixMillis) -> NewEvent {
    NewEvent::api(
        EventType::NotificationRead,
        now,
        serde_json::json!({"notification_id": id, "user_id": user.get()}).to_string(),
    )
}

pub(crate) fn channels_text(channels: &[Channel]) -> String {
    channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn channels_of(raw: &str) -> Result<Vec<Channel>, StorageError> {
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(|c| {
            Channel::parse_field(c, "channels")
                .map_err(|_| StorageError::Corrupt(format!("stored channel {c:?}")))
        })
        .collect()
}

pub(crate) fn channel_of(raw: &str) -> Result<Channel, StorageError> {
    Channel::parse_field(raw, "channel")
        .map_err(|_| StorageError::Corrupt(format!("stored channel {raw:?}")))
}

pub(crate) fn status_of(raw: &str) -> Result<DeliveryStatus, StorageError> {
    DeliveryStatus::parse(raw)
        .ok_or_else(|| StorageError::Corrupt(format!("stored notification status {raw:?}")))
}

pub(crate) fn recipients_of(raw: &str) -> Result<Recipients, StorageError> {
    Recipients::parse(raw)
        .ok_or_else(|| StorageError::Corrupt(format!("stored rule recipients {raw:?}")))
}

/// The preferences scope of the channel switches (rule overrides use the rule's name).
pub(crate) const DEFAULT_SCOPE: &str = "*";

#[cfg(test)]
mod tests {
    use super::redact_addresses;

    #[test]
    fn addresses_in_a_reason_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_addresses(
                "SMTP: permanent error (550): 5.1.1 <Ann.B+x@mail.example.com>: no such user."
            ),
            "SMTP: permanent error (550): 5.1.1 <[address]>: no such user."
        );
        assert_eq!(
            redact_addresses("to ann@example.com. and bob@ex-ample.org: refused"),
            "to [address]. and [address]: refused"
        );
        assert_eq!(
            redact_addresses("connection refused @ port 25, user@ nothing"),
            "connection refused @ port 25, user@ nothing"
        );
        assert_eq!(redact_addresses("é@ü.de ok"), "[address] ok");
    }
}

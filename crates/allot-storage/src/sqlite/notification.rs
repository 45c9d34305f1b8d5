//! Notifications on SQLite. Every write runs in the single writer's savepoint with its events,
//! so the consumer's cursor, the notifications it made and their events commit together.
//! One process owns a data directory (its lock file) and runs one consumer and one sender, so
//! the leases are written (one protocol for both backends) but never waited for here: after a
//! crash and restart, the new process takes up the consumer and the claimed emails at once
//! instead of waiting for the dead process's leases to run out.

use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Role};
use allot_domain::event::ACTOR_NOTIFIER;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::event::{append, append_events};
use crate::StorageError;
use crate::crypto::Cipher;
use crate::notification::{
    Attempt, ChannelSwitches, DEFAULT_SCOPE, EmailPart, InAppPart, InboxQuery, NewNotification,
    NewTemplate, Notification, NotificationStore, OutboxQuery, Preferences, PushPart,
    RULES_CONSUMER, Rule, RuleUpdate, SmsPart, Template, TemplateDelete, TemplateKey,
    TemplateWrite, attempt_events, channel_of, channels_of, channels_text, initial, open_phone,
    open_texts, preferences_event, read_event, recipients_of, rule_event, seal_error, seal_phone,
    seal_texts, status_of, stored_events, template_event,
};
use allot_domain::event::EventType;
use allot_domain::notification::Channel;

const TEMPLATE_COLUMNS: &str = "id, name, email_subject, email_body, in_app_title, in_app_body, \
                                sms_text, push_title, push_body, push_url, \
                                created_at_ms, updated_at_ms FROM notification_templates";
const RULE_COLUMNS: &str = "id, name, event_type, recipients, template, channels, active, \
                            updated_at_ms FROM notification_rules";
const NOTIFICATION_COLUMNS: &str = "id, user_id, channel, template, rule, event_seq, \
     subject_enc, body_enc, status, attempts, last_error_enc, next_attempt_at_ms, read_at_ms, sent_at_ms, \
     created_at_ms, updated_at_ms, link_enc FROM notifications";

fn template_of(r: &Row<'_>) -> rusqlite::Result<Template> {
    let email = match (
        r.get::<_, Option<String>>(2)?,
        r.get::<_, Option<String>>(3)?,
    ) {
        (Some(subject), Some(body)) => Some(EmailPart { subject, body }),
        _ => None,
    };
    let in_app = match (
        r.get::<_, Option<String>>(4)?,
        r.get::<_, Option<String>>(5)?,
    ) {
        (Some(title), Some(body)) => Some(InAppPart { title, body }),
        _ => None,
    };
    let sms = r.get::<_, Option<String>>(6)?.map(|text| SmsPart { text });
    let push = match (
        r.get::<_, Option<String>>(7)?,
        r.get::<_, Option<String>>(8)?,
    ) {
        (Some(title), Some(body)) => Some(PushPart {
            title,
            body,
            url: r.get(9)?,
        }),
        _ => None,
    };
    Ok(Template {
        id: r.get(0)?,
        name: r.get(1)?,
        email,
        in_app,
        sms,
        push,
        created_at: UnixMillis::from_millis(r.get(10)?),
        updated_at: UnixMillis::from_millis(r.get(11)?),
    })
}

type RuleRow = (i64, String, String, String, String, String, bool, i64);

fn rule_row(r: &Row<'_>) -> rusqlite::Result<RuleRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn rule_of(
    (id, name, event_type, recipients, template, channels, active, updated): RuleRow,
) -> Result<Rule, StorageError> {
    Ok(Rule {
        id,
        name,
        event_type,
        recipients: recipients_of(&recipients)?,
        template,
        channels: channels_of(&channels)?,
        active,
        updated_at: UnixMillis::from_millis(updated),
    })
}

struct NotificationRow {
    id: i64,
    user: i64,
    channel: String,
    template: Option<String>,
    rule: Option<String>,
    event_seq: Option<i64>,
    subject: String,
    body: String,
    link: Option<String>,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    next_attempt_at: Option<i64>,
    read_at: Option<i64>,
    sent_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

fn notification_row(r: &Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        id: r.get(0)?,
        user: r.get(1)?,
        channel: r.get(2)?,
        template: r.get(3)?,
        rule: r.get(4)?,
        event_seq: r.get(5)?,
        subject: r.get(6)?,
        body: r.get(7)?,
        status: r.get(8)?,
        attempts: r.get(9)?,
        last_error: r.get(10)?,
        next_attempt_at: r.get(11)?,
        read_at: r.get(12)?,
        sent_at: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        link: r.get(16)?,
    })
}

fn notification_of(cipher: &Cipher, n: NotificationRow) -> Result<Notification, StorageError> {
    open_texts(
        cipher,
        Notification {
            id: n.id,
            user: AccountId::new(n.user),
            channel: channel_of(&n.channel)?,
            template: n.template,
            rule: n.rule,
            event_seq: n.event_seq,
            subject: n.subject,
            body: n.body,
            link: n.link,
            status: status_of(&n.status)?,
            attempts: u32::try_from(n.attempts).unwrap_or(u32::MAX),
            last_error: n.last_error,
            next_attempt_at: n.next_attempt_at.map(UnixMillis::from_millis),
            read_at: n.read_at.map(UnixMillis::from_millis),
            sent_at: n.sent_at.map(UnixMillis::from_millis),
            created_at: UnixMillis::from_millis(n.created_at),
            updated_at: UnixMillis::from_millis(n.updated_at),
        },
    )
}

fn template_id(conn: &Connection, key: &TemplateKey) -> Result<Option<i64>, StorageError> {
    let found = match key {
        TemplateKey::Id(id) => conn
            .prepare_cached("SELECT id FROM notification_templates WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?,
        TemplateKey::Name(name) => conn
            .prepare_cached("SELECT id FROM notification_templates WHERE name = ?1")?
            .query_row(params![name], |r| r.get(0))
            .optional()?,
    };
    Ok(found)
}

fn template_by_id(conn: &Connection, id: i64) -> Result<Option<Template>, StorageError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {TEMPLATE_COLUMNS} WHERE id = ?1"))?
        .query_row(params![id], template_of)
        .optional()?)
}

fn name_taken(conn: &Connection, name: &str, except: i64) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM notification_templates WHERE name = ?1 AND id <> ?2")?
        .query_row(params![name, except], |_| Ok(()))
        .optional()?
        .is_some())
}

fn notification_by_id(
    conn: &Connection,
    cipher: &Cipher,
    id: i64,
) -> Result<Option<Notification>, StorageError> {
    conn.prepare_cached(&format!("SELECT {NOTIFICATION_COLUMNS} WHERE id = ?1"))?
        .query_row(params![id], notification_row)
        .optional()?
        .map(|n| notification_of(cipher, n))
        .transpose()
}

/// Inserts one notification in its initial state, then seals its texts bound to the id the
/// insert gave; with its events.
fn insert(
    conn: &Connection,
    cipher: &Cipher,
    n: &NewNotification,
    now: UnixMillis,
    actor: Option<&'static str>,
) -> Result<i64, StorageError> {
    let init = initial(n, now);
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO notifications (user_id, channel, template, rule, event_seq,
                 subject_enc, body_enc, status, attempts, last_error_enc, next_attempt_at_ms,
                 sent_at_ms, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, '', '', ?6, 0, NULL, ?7, ?8, ?9, ?9) RETURNING id",
        )?
        .query_row(
            params![
                n.user.get(),
                n.channel.as_str(),
                n.template,
                n.rule,
                n.event_seq,
                init.status.as_str(),
                init.next_attempt_at,
                init.sent_at,
                now.as_millis(),
            ],
            |r| r.get(0),
        )?;
    let sealed = seal_texts(cipher, id, n);
    conn.prepare_cached(
        "UPDATE notifications SET subject_enc = ?2, body_enc = ?3, last_error_enc = ?4,
             link_enc = ?5
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        sealed.subject,
        sealed.body,
        sealed.last_error,
        sealed.link
    ])?;
    append_events(conn, &stored_events(id, n, now, actor))?;
    Ok(id)
}

/// The saved template, with its event.
fn saved(
    conn: &Connection,
    id: i64,
    kind: EventType,
    now: UnixMillis,
) -> Result<TemplateWrite, StorageError> {
    Ok(match template_by_id(conn, id)? {
        Some(t) => {
            append(conn, template_event(kind, &t, now))?;
            TemplateWrite::Saved(Box::new(t))
        }
        None => TemplateWrite::NotFound,
    })
}

fn read_preferences(
    conn: &Connection,
    cipher: &Cipher,
    user: i64,
) -> Result<Preferences, StorageError> {
    let mut prefs = Preferences::default();
    let sealed: Option<String> = conn
        .prepare_cached("SELECT phone_enc FROM notification_phones WHERE user_id = ?1")?
        .query_row(params![user], |r| r.get(0))
        .optional()?;
    prefs.phone = sealed
        .map(|p| open_phone(cipher, AccountId::new(user), &p))
        .transpose()?;
    let rows = conn
        .prepare_cached(
            "SELECT scope, email, in_app, sms, push FROM notification_preferences
             WHERE user_id = ?1",
        )?
        .query_map(params![user], |r| {
            Ok((
                r.get::<_, String>(0)?,
                ChannelSwitches {
                    email: r.get(1)?,
                    in_app: r.get(2)?,
                    sms: r.get(3)?,
                    push: r.get(4)?,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (scope, switches) in rows {
        if scope == DEFAULT_SCOPE {
            prefs.channels = switches;
        } else {
            prefs.rules.insert(scope, switches);
        }
    }
    Ok(prefs)
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn create_template(
        &self,
        new: NewTemplate,
        now: UnixMillis,
    ) -> Result<TemplateWrite, StorageError> {
        self.write(1, move |conn, _| {
            if name_taken(conn, &new.name, -1)? {
                return Ok(TemplateWrite::NameTaken);
            }
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO notification_templates (name, email_subject, email_body,
                         in_app_title, in_app_body, sms_text, push_title, push_body, push_url,
                         created_at_ms, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING id",
                )?
                .query_row(
                    params![
                        new.name,
                        new.email.as_ref().map(|e| &e.subject),
                        new.email.as_ref().map(|e| &e.body),
                        new.in_app.as_ref().map(|e| &e.title),
                        new.in_app.as_ref().map(|e| &e.body),
                        new.sms.as_ref().map(|p| &p.text),
                        new.push.as_ref().map(|p| &p.title),
                        new.push.as_ref().map(|p| &p.body),
                        new.push.as_ref().and_then(|p| p.url.as_ref()),
                        now.as_millis()
                    ],
                    |r| r.get(0),
                )?;
            saved(conn, id, EventType::NotificationTemplateCreated, now)
        })
        .await
    }

    async fn templates(&self) -> Result<Vec<Template>, StorageError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {TEMPLATE_COLUMNS} ORDER BY name"))?
                .query_map([], template_of)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn template(&self, key: TemplateKey) -> Result<Option<Template>, StorageError> {
        self.read(move |conn| match template_id(conn, &key)? {
            Some(id) => template_by_id(conn, id),
            None => Ok(None),
        })
        .await
    }

    async fn update_template(
        &self,
        key: TemplateKey,
        new: NewTemplate,
        now: UnixMillis,
    ) -> Result<TemplateWrite, StorageError> {
        self.write(1, move |conn, _| {
            let Some(id) = template_id(conn, &key)? else {
                return Ok(TemplateWrite::NotFound);
            };
            if name_taken(conn, &new.name, id)? {
                return Ok(TemplateWrite::NameTaken);
            }
            conn.prepare_cached(
                "UPDATE notification_templates SET name = ?2, email_subject = ?3,
                     email_body = ?4, in_app_title = ?5, in_app_body = ?6, sms_text = ?7,
                     push_title = ?8, push_body = ?9, push_url = ?10, updated_at_ms = ?11
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                new.name,
                new.email.as_ref().map(|e| &e.subject),
                new.email.as_ref().map(|e| &e.body),
                new.in_app.as_ref().map(|e| &e.title),
                new.in_app.as_ref().map(|e| &e.body),
                new.sms.as_ref().map(|p| &p.text),
                new.push.as_ref().map(|p| &p.title),
                new.push.as_ref().map(|p| &p.body),
                new.push.as_ref().and_then(|p| p.url.as_ref()),
                now.as_millis()
            ])?;
            saved(conn, id, EventType::NotificationTemplateUpdated, now)
        })
        .await
    }

    async fn delete_template(&self, key: TemplateKey) -> Result<TemplateDelete, StorageError> {
        self.write(1, move |conn, _| {
            let Some(id) = template_id(conn, &key)? else {
                return Ok(TemplateDelete::NotFound);
            };
            let user: Option<String> = conn
                .prepare_cached(
                    "SELECT r.name FROM notification_rules r
                     JOIN notification_templates t ON t.name = r.template
                     WHERE t.id = ?1 ORDER BY r.name LIMIT 1",
                )?
                .query_row(params![id], |r| r.get(0))
                .optional()?;
            if let Some(rule) = user {
                return Ok(TemplateDelete::InUse { rule });
            }
            if let Some(t) = template_by_id(conn, id)? {
                conn.prepare_cached("DELETE FROM notification_templates WHERE id = ?1")?
                    .execute(params![id])?;
                let now = crate::event::wall_now();
                append(
                    conn,
                    template_event(EventType::NotificationTemplateDeleted, &t, now),
                )?;
            }
            Ok(TemplateDelete::Deleted)
        })
        .await
    }

    async fn rules(&self) -> Result<Vec<Rule>, StorageError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {RULE_COLUMNS} ORDER BY name"))?
                .query_map([], rule_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(rule_of)
                .collect()
        })
        .await
    }

    async fn update_rule(
        &self,
        name: String,
        update: RuleUpdate,
        now: UnixMillis,
    ) -> Result<Option<Rule>, StorageError> {
        self.write(1, move |conn, _| {
            let channels = update.channels.as_deref().map(channels_text);
            let n = conn
                .prepare_cached(
                    "UPDATE notification_rules SET template = coalesce(?2, template),
                         channels = coalesce(?3, channels), active = coalesce(?4, active),
                         updated_at_ms = ?5
                     WHERE name = ?1",
                )?
                .execute(params![
                    name,
                    update.template,
                    channels,
                    update.active,
                    now.as_millis()
                ])?;
            if n == 0 {
                return Ok(None);
            }
            let rule = conn
                .prepare_cached(&format!("SELECT {RULE_COLUMNS} WHERE name = ?1"))?
                .query_row(params![name], rule_row)
                .optional()?
                .map(rule_of)
                .transpose()?;
            if let Some(r) = &rule {
                append(conn, rule_event(r, now))?;
            }
            Ok(rule)
        })
        .await
    }

    async fn preferences(&self, user: AccountId) -> Result<Preferences, StorageError> {
        let cipher = self.cipher.clone();
        self.read(move |conn| read_preferences(conn, &cipher, user.get()))
            .await
    }

    async fn set_preferences(
        &self,
        user: AccountId,
        preferences: Preferences,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        let cipher = self.cipher.clone();
        self.write(1 + preferences.rules.len(), move |conn, _| {
            conn.prepare_cached("DELETE FROM notification_preferences WHERE user_id = ?1")?
                .execute(params![user.get()])?;
            conn.prepare_cached("DELETE FROM notification_phones WHERE user_id = ?1")?
                .execute(params![user.get()])?;
            if let Some(phone) = &preferences.phone {
                conn.prepare_cached(
                    "INSERT INTO notification_phones (user_id, phone_enc, updated_at_ms)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    user.get(),
                    seal_phone(&cipher, user, phone),
                    now.as_millis()
                ])?;
            }
            let mut insert = conn.prepare_cached(
                "INSERT INTO notification_preferences (user_id, scope, email, in_app, sms, push,
                     updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let scopes = std::iter::once((DEFAULT_SCOPE, preferences.channels)).chain(
                preferences
                    .rules
                    .iter()
                    .map(|(rule, switches)| (rule.as_str(), *switches)),
            );
            for (scope, s) in scopes {
                insert.execute(params![
                    user.get(),
                    scope,
                    s.email,
                    s.in_app,
                    s.sms,
                    s.push,
                    now.as_millis()
                ])?;
            }
            append(conn, preferences_event(user, &preferences, now))?;
            Ok(())
        })
        .await
    }

    async fn active_users_with_role(&self, role: Role) -> Result<Vec<AccountId>, StorageError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT id FROM users WHERE role = ?1 AND active = 1 ORDER BY id")?
                .query_map(params![role.as_str()], |r| r.get::<_, i64>(0))?
                .map(|id| id.map(AccountId::new))
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn claim_consumer(
        &self,
        owner: String,
        now: UnixMillis,
        lease_ms: i64,
    ) -> Result<Option<i64>, StorageError> {
        self.write_one(move |conn, _| {
            Ok(conn
                .prepare_cached(
                    "UPDATE notification_cursor SET lease_owner = ?2, lease_until_ms = ?3 + ?4
                     WHERE consumer = ?1 RETURNING last_seq",
                )?
                .query_row(
                    params![RULES_CONSUMER, owner, now.as_millis(), lease_ms],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn commit_notifications(
        &self,
        owner: String,
        from_seq: i64,
        to_seq: i64,
        notifications: Vec<NewNotification>,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1 + notifications.len(), move |conn, _| {
            let moved = conn
                .prepare_cached(
                    "UPDATE notification_cursor SET last_seq = ?4
                     WHERE consumer = ?1 AND lease_owner = ?2 AND last_seq = ?3",
                )?
                .execute(params![RULES_CONSUMER, owner, from_seq, to_seq])?;
            if moved == 0 {
                return Ok(false);
            }
            for n in &notifications {
                insert(conn, &cipher, n, now, Some(ACTOR_NOTIFIER))?;
            }
            Ok(true)
        })
        .await
    }

    async fn send_notification(
        &self,
        new: NewNotification,
        now: UnixMillis,
    ) -> Result<Notification, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let id = insert(conn, &cipher, &new, now, None)?;
            notification_by_id(conn, &cipher, id)?
                .ok_or_else(|| StorageError::Corrupt(format!("notification {id} vanished")))
        })
        .await
    }

    async fn notification(&self, id: i64) -> Result<Option<Notification>, StorageError> {
        let cipher = self.cipher.clone();
        self.read(move |conn| notification_by_id(conn, &cipher, id))
            .await
    }

    async fn inbox(&self, q: InboxQuery) -> Result<Vec<Notification>, StorageError> {
        let cipher = self.cipher.clone();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS}
                 WHERE user_id = ?1 AND channel = 'in_app' AND id < ?2
                   AND (?3 = 0 OR read_at_ms IS NULL)
                 ORDER BY id DESC LIMIT ?4"
            ))?
            .query_map(
                params![
                    q.user.get(),
                    q.before.unwrap_or(i64::MAX),
                    q.unread_only,
                    q.limit
                ],
                notification_row,
            )?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|n| notification_of(&cipher, n))
            .collect()
        })
        .await
    }

    async fn outbox(&self, q: OutboxQuery) -> Result<Vec<Notification>, StorageError> {
        let cipher = self.cipher.clone();
        self.read(move |conn| {
            let before = q.before.unwrap_or(i64::MAX);
            let rows = match q.status {
                Some(status) => conn
                    .prepare_cached(&format!(
                        "SELECT {NOTIFICATION_COLUMNS}
                         WHERE channel <> 'in_app' AND status = ?1 AND id < ?2
                         ORDER BY id DESC LIMIT ?3"
                    ))?
                    .query_map(params![status.as_str(), before, q.limit], notification_row)?
                    .collect::<Result<Vec<_>, _>>()?,
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {NOTIFICATION_COLUMNS}
                         WHERE channel <> 'in_app' AND id < ?1
                         ORDER BY id DESC LIMIT ?2"
                    ))?
                    .query_map(params![before, q.limit], notification_row)?
                    .collect::<Result<Vec<_>, _>>()?,
            };
            rows.into_iter()
                .map(|n| notification_of(&cipher, n))
                .collect()
        })
        .await
    }

    async fn mark_read(
        &self,
        user: AccountId,
        id: i64,
        now: UnixMillis,
    ) -> Result<Option<Notification>, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let first = conn
                .prepare_cached(
                    "UPDATE notifications SET read_at_ms = ?3
                     WHERE id = ?1 AND user_id = ?2 AND channel = 'in_app' AND read_at_ms IS NULL",
                )?
                .execute(params![id, user.get(), now.as_millis()])?;
            if first > 0 {
                append(conn, read_event(id, user, now))?;
            }
            Ok(notification_by_id(conn, &cipher, id)?
                .filter(|n| n.user == user && n.channel == Channel::InApp))
        })
        .await
    }

    async fn claim_due_outbound(
        &self,
        now: UnixMillis,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StorageError> {
        let cipher = self.cipher.clone();
        self.write(limit as usize, move |conn, _| {
            let ids = conn
                .prepare_cached(
                    "UPDATE notifications SET lease_until_ms = ?1 + ?2
                     WHERE id IN (SELECT id FROM notifications
                                  WHERE channel <> 'in_app'
                                    AND status IN ('queued', 'failed')
                                    AND next_attempt_at_ms IS NOT NULL
                                    AND next_attempt_at_ms <= ?1
                                  ORDER BY next_attempt_at_ms, id LIMIT ?3)
                     RETURNING id",
                )?
                .query_map(params![now.as_millis(), lease_ms, limit], |r| {
                    r.get::<_, i64>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                claimed.extend(notification_by_id(conn, &cipher, id)?);
            }
            claimed.sort_by_key(|n| n.id);
            Ok(claimed)
        })
        .await
    }

    async fn record_attempt(
        &self,
        id: i64,
        attempt: Attempt,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let (status, error, retry_at, sent_at) = match &attempt {
                Attempt::Sent => ("sent", None, None, Some(now.as_millis())),
                Attempt::Failed { reason, retry_at } => (
                    "failed",
                    Some(seal_error(&cipher, id, reason)),
                    retry_at.map(UnixMillis::as_millis),
                    None,
                ),
            };
            let row = conn
                .prepare_cached(
                    "UPDATE notifications SET status = ?2, attempts = attempts + 1,
                         last_error_enc = coalesce(?3, last_error_enc), next_attempt_at_ms = ?4,
                         sent_at_ms = ?5, lease_until_ms = 0, updated_at_ms = ?6
                     WHERE id = ?1 AND status <> 'sent'
                     RETURNING user_id, channel, attempts",
                )?
                .query_row(
                    params![id, status, error, retry_at, sent_at, now.as_millis()],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .optional()?;
            if let Some((user, channel, attempts)) = row {
                let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
                let events =
                    attempt_events(id, user, channel_of(&channel)?, attempts, &attempt, now);
                append_events(conn, &events)?;
            }
            Ok(())
        })
        .await
    }
}

//! Notifications on PostgreSQL, shared by several instances. The rules consumer is leased by
//! one instance at a time (a conditional update of its cursor row), and its commit moves the
//! cursor only from where it read (compare-and-set under the row lock): a stale instance whose
//! lease passed on commits nothing. Email senders claim due rows with `FOR UPDATE SKIP
//! LOCKED` and a lease time, so two instances never claim one row while its lease runs.

use super::conn::Db;
use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Role};
use allot_domain::event::ACTOR_NOTIFIER;
use async_trait::async_trait;
use tokio_postgres::Row;

use super::PgStore;
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

fn template_of(r: &Row) -> Result<Template, StorageError> {
    let email = match (
        r.try_get::<_, Option<String>>(2)?,
        r.try_get::<_, Option<String>>(3)?,
    ) {
        (Some(subject), Some(body)) => Some(EmailPart { subject, body }),
        _ => None,
    };
    let in_app = match (
        r.try_get::<_, Option<String>>(4)?,
        r.try_get::<_, Option<String>>(5)?,
    ) {
        (Some(title), Some(body)) => Some(InAppPart { title, body }),
        _ => None,
    };
    let sms = r
        .try_get::<_, Option<String>>(6)?
        .map(|text| SmsPart { text });
    let push = match (
        r.try_get::<_, Option<String>>(7)?,
        r.try_get::<_, Option<String>>(8)?,
    ) {
        (Some(title), Some(body)) => Some(PushPart {
            title,
            body,
            url: r.try_get(9)?,
        }),
        _ => None,
    };
    Ok(Template {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        email,
        in_app,
        sms,
        push,
        created_at: UnixMillis::from_millis(r.try_get(10)?),
        updated_at: UnixMillis::from_millis(r.try_get(11)?),
    })
}

fn rule_of(r: &Row) -> Result<Rule, StorageError> {
    Ok(Rule {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        event_type: r.try_get(2)?,
        recipients: recipients_of(r.try_get(3)?)?,
        template: r.try_get(4)?,
        channels: channels_of(r.try_get(5)?)?,
        active: r.try_get(6)?,
        updated_at: UnixMillis::from_millis(r.try_get(7)?),
    })
}

fn notification_of(cipher: &Cipher, r: &Row) -> Result<Notification, StorageError> {
    let opt_ms = |i: usize| -> Result<Option<UnixMillis>, StorageError> {
        Ok(r.try_get::<_, Option<i64>>(i)?.map(UnixMillis::from_millis))
    };
    open_texts(
        cipher,
        Notification {
            id: r.try_get(0)?,
            user: AccountId::new(r.try_get(1)?),
            channel: channel_of(r.try_get(2)?)?,
            template: r.try_get(3)?,
            rule: r.try_get(4)?,
            event_seq: r.try_get(5)?,
            subject: r.try_get(6)?,
            body: r.try_get(7)?,
            link: r.try_get(16)?,
            status: status_of(r.try_get(8)?)?,
            attempts: u32::try_from(r.try_get::<_, i64>(9)?).unwrap_or(u32::MAX),
            last_error: r.try_get(10)?,
            next_attempt_at: opt_ms(11)?,
            read_at: opt_ms(12)?,
            sent_at: opt_ms(13)?,
            created_at: UnixMillis::from_millis(r.try_get(14)?),
            updated_at: UnixMillis::from_millis(r.try_get(15)?),
        },
    )
}

async fn template_id(c: &impl Db, key: &TemplateKey) -> Result<Option<i64>, StorageError> {
    let row = match key {
        TemplateKey::Id(id) => {
            c.query_opt("SELECT id FROM notification_templates WHERE id = $1", &[id])
                .await?
        }
        TemplateKey::Name(name) => {
            c.query_opt(
                "SELECT id FROM notification_templates WHERE name = $1",
                &[name],
            )
            .await?
        }
    };
    Ok(row.map(|r| r.get(0)))
}

async fn template_by_id(c: &impl Db, id: i64) -> Result<Option<Template>, StorageError> {
    c.query_opt(&format!("SELECT {TEMPLATE_COLUMNS} WHERE id = $1"), &[&id])
        .await?
        .as_ref()
        .map(template_of)
        .transpose()
}

async fn notification_by_id(
    c: &impl Db,
    cipher: &Cipher,
    id: i64,
) -> Result<Option<Notification>, StorageError> {
    c.query_opt(
        &format!("SELECT {NOTIFICATION_COLUMNS} WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(|r| notification_of(cipher, r))
    .transpose()
}

/// Inserts one notification in its initial state, then seals its texts bound to the id the
/// insert gave; with its events.
async fn insert(
    c: &impl Db,
    cipher: &Cipher,
    n: &NewNotification,
    now: UnixMillis,
    actor: Option<&'static str>,
) -> Result<i64, StorageError> {
    let init = initial(n, now);
    let row = c
        .query_one(
            "INSERT INTO notifications (user_id, channel, template, rule, event_seq,
                 subject_enc, body_enc, status, attempts, last_error_enc, next_attempt_at_ms,
                 sent_at_ms, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, '', '', $6, 0, NULL, $7, $8, $9, $9) RETURNING id",
            &[
                &n.user.get(),
                &n.channel.as_str(),
                &n.template,
                &n.rule,
                &n.event_seq,
                &init.status.as_str(),
                &init.next_attempt_at,
                &init.sent_at,
                &now.as_millis(),
            ],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    let sealed = seal_texts(cipher, id, n);
    c.execute(
        "UPDATE notifications SET subject_enc = $2, body_enc = $3, last_error_enc = $4,
             link_enc = $5
         WHERE id = $1",
        &[
            &id,
            &sealed.subject,
            &sealed.body,
            &sealed.last_error,
            &sealed.link,
        ],
    )
    .await?;
    append_events(c, &stored_events(id, n, now, actor)).await?;
    Ok(id)
}

fn new_template_params(new: &NewTemplate) -> [Option<&str>; 8] {
    [
        new.email.as_ref().map(|e| e.subject.as_str()),
        new.email.as_ref().map(|e| e.body.as_str()),
        new.in_app.as_ref().map(|e| e.title.as_str()),
        new.in_app.as_ref().map(|e| e.body.as_str()),
        new.sms.as_ref().map(|p| p.text.as_str()),
        new.push.as_ref().map(|p| p.title.as_str()),
        new.push.as_ref().map(|p| p.body.as_str()),
        new.push.as_ref().and_then(|p| p.url.as_deref()),
    ]
}

#[async_trait]
impl NotificationStore for PgStore {
    async fn create_template(
        &self,
        new: NewTemplate,
        now: UnixMillis,
    ) -> Result<TemplateWrite, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let [es, eb, it, ib, st, pt, pb, pu] = new_template_params(&new);
        let row = tx
            .query_opt(
                "INSERT INTO notification_templates (name, email_subject, email_body,
                     in_app_title, in_app_body, sms_text, push_title, push_body, push_url,
                     created_at_ms, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
                 ON CONFLICT (name) DO NOTHING
                 RETURNING id",
                &[
                    &new.name,
                    &es,
                    &eb,
                    &it,
                    &ib,
                    &st,
                    &pt,
                    &pb,
                    &pu,
                    &now.as_millis(),
                ],
            )
            .await?;
        let Some(row) = row else {
            return Ok(TemplateWrite::NameTaken);
        };
        let Some(saved) = template_by_id(&tx, row.try_get(0)?).await? else {
            return Ok(TemplateWrite::NotFound);
        };
        append(
            &tx,
            template_event(EventType::NotificationTemplateCreated, &saved, now),
        )
        .await?;
        super::commit(tx).await?;
        Ok(TemplateWrite::Saved(Box::new(saved)))
    }

    async fn templates(&self) -> Result<Vec<Template>, StorageError> {
        let client = self.client().await?;
        client
            .query(&format!("SELECT {TEMPLATE_COLUMNS} ORDER BY name"), &[])
            .await?
            .iter()
            .map(template_of)
            .collect()
    }

    async fn template(&self, key: TemplateKey) -> Result<Option<Template>, StorageError> {
        let client = self.client().await?;
        match template_id(&*client, &key).await? {
            Some(id) => template_by_id(&*client, id).await,
            None => Ok(None),
        }
    }

    async fn update_template(
        &self,
        key: TemplateKey,
        new: NewTemplate,
        now: UnixMillis,
    ) -> Result<TemplateWrite, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(id) = template_id(&tx, &key).await? else {
            return Ok(TemplateWrite::NotFound);
        };
        let taken = tx
            .query_opt(
                "SELECT 1 FROM notification_templates WHERE name = $1 AND id <> $2",
                &[&new.name, &id],
            )
            .await?
            .is_some();
        if taken {
            return Ok(TemplateWrite::NameTaken);
        }
        let [es, eb, it, ib, st, pt, pb, pu] = new_template_params(&new);
        let updated = tx
            .execute(
                "UPDATE notification_templates SET name = $2, email_subject = $3,
                     email_body = $4, in_app_title = $5, in_app_body = $6, sms_text = $7,
                     push_title = $8, push_body = $9, push_url = $10, updated_at_ms = $11
                 WHERE id = $1",
                &[
                    &id,
                    &new.name,
                    &es,
                    &eb,
                    &it,
                    &ib,
                    &st,
                    &pt,
                    &pb,
                    &pu,
                    &now.as_millis(),
                ],
            )
            .await;
        match updated {
            Ok(_) => {}
            // A concurrent save took the name between the check and the update.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                return Ok(TemplateWrite::NameTaken);
            }
            Err(e) => return Err(e.into()),
        }
        let Some(saved) = template_by_id(&tx, id).await? else {
            return Ok(TemplateWrite::NotFound);
        };
        append(
            &tx,
            template_event(EventType::NotificationTemplateUpdated, &saved, now),
        )
        .await?;
        super::commit(tx).await?;
        Ok(TemplateWrite::Saved(Box::new(saved)))
    }

    async fn delete_template(&self, key: TemplateKey) -> Result<TemplateDelete, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(id) = template_id(&tx, &key).await? else {
            return Ok(TemplateDelete::NotFound);
        };
        // The foreign key refuses the delete if a rule names the template; look first to say
        // which rule.
        let user = tx
            .query_opt(
                "SELECT r.name FROM notification_rules r
                 JOIN notification_templates t ON t.name = r.template
                 WHERE t.id = $1 ORDER BY r.name LIMIT 1",
                &[&id],
            )
            .await?;
        if let Some(row) = user {
            return Ok(TemplateDelete::InUse {
                rule: row.try_get(0)?,
            });
        }
        if let Some(t) = template_by_id(&tx, id).await? {
            tx.execute("DELETE FROM notification_templates WHERE id = $1", &[&id])
                .await?;
            let now = crate::event::wall_now();
            append(
                &tx,
                template_event(EventType::NotificationTemplateDeleted, &t, now),
            )
            .await?;
        }
        super::commit(tx).await?;
        Ok(TemplateDelete::Deleted)
    }

    async fn rules(&self) -> Result<Vec<Rule>, StorageError> {
        let client = self.client().await?;
        client
            .query(&format!("SELECT {RULE_COLUMNS} ORDER BY name"), &[])
            .await?
            .iter()
            .map(rule_of)
            .collect()
    }

    async fn update_rule(
        &self,
        name: String,
        update: RuleUpdate,
        now: UnixMillis,
    ) -> Result<Option<Rule>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let channels = update.channels.as_deref().map(channels_text);
        let row = tx
            .query_opt(
                &format!(
                    "WITH u AS (UPDATE notification_rules SET
                         template = coalesce($2, template), channels = coalesce($3, channels),
                         active = coalesce($4, active), updated_at_ms = $5
                     WHERE name = $1 RETURNING *)
                     SELECT {} ",
                    RULE_COLUMNS.replace("FROM notification_rules", "FROM u")
                ),
                &[
                    &name,
                    &update.template,
                    &channels,
                    &update.active,
                    &now.as_millis(),
                ],
            )
            .await?;
        let rule = row.as_ref().map(rule_of).transpose()?;
        if let Some(r) = &rule {
            append(&tx, rule_event(r, now)).await?;
        }
        super::commit(tx).await?;
        Ok(rule)
    }

    async fn preferences(&self, user: AccountId) -> Result<Preferences, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT scope, email, in_app, sms, push FROM notification_preferences
                 WHERE user_id = $1",
                &[&user.get()],
            )
            .await?;
        let phone = client
            .query_opt(
                "SELECT phone_enc FROM notification_phones WHERE user_id = $1",
                &[&user.get()],
            )
            .await?
            .map(|r| open_phone(&self.cipher, user, r.try_get(0)?))
            .transpose()?;
        let mut prefs = Preferences {
            phone,
            ..Preferences::default()
        };
        for r in rows {
            let scope: String = r.try_get(0)?;
            let switches = ChannelSwitches {
                email: r.try_get(1)?,
                in_app: r.try_get(2)?,
                sms: r.try_get(3)?,
                push: r.try_get(4)?,
            };
            if scope == DEFAULT_SCOPE {
                prefs.channels = switches;
            } else {
                prefs.rules.insert(scope, switches);
            }
        }
        Ok(prefs)
    }

    async fn set_preferences(
        &self,
        user: AccountId,
        preferences: Preferences,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM notification_preferences WHERE user_id = $1",
            &[&user.get()],
        )
        .await?;
        tx.execute(
            "DELETE FROM notification_phones WHERE user_id = $1",
            &[&user.get()],
        )
        .await?;
        if let Some(phone) = &preferences.phone {
            tx.execute(
                "INSERT INTO notification_phones (user_id, phone_enc, updated_at_ms)
                 VALUES ($1, $2, $3)",
                &[
                    &user.get(),
                    &seal_phone(&self.cipher, user, phone),
                    &now.as_millis(),
                ],
            )
            .await?;
        }
        let mut scopes = vec![DEFAULT_SCOPE.to_owned()];
        let mut email = vec![preferences.channels.email];
        let mut in_app = vec![preferences.channels.in_app];
        let mut sms = vec![preferences.channels.sms];
        let mut push = vec![preferences.channels.push];
        for (rule, s) in &preferences.rules {
            scopes.push(rule.clone());
            email.push(s.email);
            in_app.push(s.in_app);
            sms.push(s.sms);
            push.push(s.push);
        }
        tx.execute(
            "INSERT INTO notification_preferences
                 (user_id, scope, email, in_app, sms, push, updated_at_ms)
             SELECT $1, s, e, i, m, p, $7
               FROM unnest($2::text[], $3::bool[], $4::bool[], $5::bool[], $6::bool[])
                    AS u(s, e, i, m, p)",
            &[
                &user.get(),
                &scopes,
                &email,
                &in_app,
                &sms,
                &push,
                &now.as_millis(),
            ],
        )
        .await?;
        append(&tx, preferences_event(user, &preferences, now)).await?;
        super::commit(tx).await?;
        Ok(())
    }

    async fn active_users_with_role(&self, role: Role) -> Result<Vec<AccountId>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM users WHERE role = $1 AND active ORDER BY id",
                &[&role.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(AccountId::new(r.try_get(0)?)))
            .collect()
    }

    async fn claim_consumer(
        &self,
        owner: String,
        now: UnixMillis,
        lease_ms: i64,
    ) -> Result<Option<i64>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE notification_cursor SET lease_owner = $2, lease_until_ms = $3 + $4
                 WHERE consumer = $1 AND (lease_owner IS NULL OR lease_owner = $2
                                          OR lease_until_ms <= $3)
                 RETURNING last_seq",
                &[&RULES_CONSUMER, &owner, &now.as_millis(), &lease_ms],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn commit_notifications(
        &self,
        owner: String,
        from_seq: i64,
        to_seq: i64,
        notifications: Vec<NewNotification>,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // First, so the cursor row is locked for the rest of the transaction: a concurrent
        // commit waits, then finds last_seq moved and stores nothing.
        let moved = tx
            .execute(
                "UPDATE notification_cursor SET last_seq = $4
                 WHERE consumer = $1 AND lease_owner = $2 AND last_seq = $3",
                &[&RULES_CONSUMER, &owner, &from_seq, &to_seq],
            )
            .await?;
        if moved == 0 {
            return Ok(false);
        }
        for n in &notifications {
            insert(&tx, &self.cipher, n, now, Some(ACTOR_NOTIFIER)).await?;
        }
        super::commit(tx).await?;
        Ok(true)
    }

    async fn send_notification(
        &self,
        new: NewNotification,
        now: UnixMillis,
    ) -> Result<Notification, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id = insert(&tx, &self.cipher, &new, now, None).await?;
        let stored = notification_by_id(&tx, &self.cipher, id).await?;
        super::commit(tx).await?;
        stored.ok_or_else(|| StorageError::Corrupt(format!("notification {id} vanished")))
    }

    async fn notification(&self, id: i64) -> Result<Option<Notification>, StorageError> {
        let client = self.client().await?;
        notification_by_id(&*client, &self.cipher, id).await
    }

    async fn inbox(&self, q: InboxQuery) -> Result<Vec<Notification>, StorageError> {
        let client = self.client().await?;
        let before = q.before.unwrap_or(i64::MAX);
        let limit = i64::from(q.limit);
        client
            .query(
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS}
                     WHERE user_id = $1 AND channel = 'in_app' AND id < $2
                       AND (NOT $3 OR read_at_ms IS NULL)
                     ORDER BY id DESC LIMIT $4"
                ),
                &[&q.user.get(), &before, &q.unread_only, &limit],
            )
            .await?
            .iter()
            .map(|r| notification_of(&self.cipher, r))
            .collect()
    }

    async fn outbox(&self, q: OutboxQuery) -> Result<Vec<Notification>, StorageError> {
        let client = self.client().await?;
        let before = q.before.unwrap_or(i64::MAX);
        let limit = i64::from(q.limit);
        let status = q.status.map(|s| s.as_str());
        // An unnamed statement is planned with its values: a given status uses
        // `notifications_outbox`, none the primary key.
        client
            .query(
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS}
                     WHERE channel <> 'in_app' AND ($1::text IS NULL OR status = $1)
                       AND id < $2
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&status, &before, &limit],
            )
            .await?
            .iter()
            .map(|r| notification_of(&self.cipher, r))
            .collect()
    }

    async fn mark_read(
        &self,
        user: AccountId,
        id: i64,
        now: UnixMillis,
    ) -> Result<Option<Notification>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let first = tx
            .execute(
                "UPDATE notifications SET read_at_ms = $3
                 WHERE id = $1 AND user_id = $2 AND channel = 'in_app' AND read_at_ms IS NULL",
                &[&id, &user.get(), &now.as_millis()],
            )
            .await?;
        if first > 0 {
            append(&tx, read_event(id, user, now)).await?;
        }
        let found = notification_by_id(&tx, &self.cipher, id)
            .await?
            .filter(|n| n.user == user && n.channel == Channel::InApp);
        super::commit(tx).await?;
        Ok(found)
    }

    async fn claim_due_outbound(
        &self,
        now: UnixMillis,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StorageError> {
        let client = self.client().await?;
        let limit = i64::from(limit);
        let rows = client
            .query(
                &format!(
                    "WITH due AS (SELECT id FROM notifications
                                  WHERE channel <> 'in_app'
                                    AND status IN ('queued', 'failed')
                                    AND next_attempt_at_ms IS NOT NULL
                                    AND next_attempt_at_ms <= $1 AND lease_until_ms <= $1
                                  ORDER BY next_attempt_at_ms, id LIMIT $3
                                  FOR UPDATE SKIP LOCKED),
                          claimed AS (UPDATE notifications n SET lease_until_ms = $1 + $2
                                      FROM due WHERE n.id = due.id RETURNING n.*)
                     SELECT {} ORDER BY id",
                    NOTIFICATION_COLUMNS.replace("FROM notifications", "FROM claimed")
                ),
                &[&now.as_millis(), &lease_ms, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| notification_of(&self.cipher, r))
            .collect()
    }

    async fn record_attempt(
        &self,
        id: i64,
        attempt: Attempt,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        let (status, error, retry_at, sent_at) = match &attempt {
            Attempt::Sent => ("sent", None, None, Some(now.as_millis())),
            Attempt::Failed { reason, retry_at } => (
                "failed",
                Some(seal_error(&self.cipher, id, reason)),
                retry_at.map(UnixMillis::as_millis),
                None,
            ),
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE notifications SET status = $2, attempts = attempts + 1,
                     last_error_enc = coalesce($3, last_error_enc), next_attempt_at_ms = $4,
                     sent_at_ms = $5, lease_until_ms = 0, updated_at_ms = $6
                 WHERE id = $1 AND status <> 'sent'
                 RETURNING user_id, channel, attempts",
                &[&id, &status, &error, &retry_at, &sent_at, &now.as_millis()],
            )
            .await?;
        if let Some(row) = row {
            let attempts = u32::try_from(row.try_get::<_, i64>(2)?).unwrap_or(u32::MAX);
            let channel = channel_of(row.try_get(1)?)?;
            let events = attempt_events(id, row.try_get(0)?, channel, attempts, &attempt, now);
            append_events(&tx, &events).await?;
        }
        super::commit(tx).await?;
        Ok(())
    }
}

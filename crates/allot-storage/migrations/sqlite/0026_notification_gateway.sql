-- Issue 19: SMS and push notifications, delivered through the shop's HTTP gateway.
--
-- 1. Templates gain an SMS part (one text) and a push part (title, body, optional url), and a
--    template may now have any one part: SQLite cannot change a CHECK in place, so the
--    templates table is rebuilt, and the rules table with it (its foreign key names the
--    templates table; the rebuilt rules point at the rebuilt templates, and the rename
--    carries the reference over).
CREATE TABLE notification_templates_v2 (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    email_subject  TEXT,
    email_body     TEXT,
    in_app_title   TEXT,
    in_app_body    TEXT,
    sms_text       TEXT,
    push_title     TEXT,
    push_body      TEXT,
    push_url       TEXT,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    CHECK ((email_subject IS NULL) = (email_body IS NULL)),
    CHECK ((in_app_title IS NULL) = (in_app_body IS NULL)),
    CHECK ((push_title IS NULL) = (push_body IS NULL)),
    CHECK (push_url IS NULL OR push_title IS NOT NULL),
    CHECK (email_subject IS NOT NULL OR in_app_title IS NOT NULL OR sms_text IS NOT NULL
           OR push_title IS NOT NULL)
);
INSERT INTO notification_templates_v2
       (id, name, email_subject, email_body, in_app_title, in_app_body, created_at_ms,
        updated_at_ms)
SELECT id, name, email_subject, email_body, in_app_title, in_app_body, created_at_ms,
       updated_at_ms
  FROM notification_templates;

CREATE TABLE notification_rules_v2 (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    recipients     TEXT    NOT NULL,
    template       TEXT    NOT NULL REFERENCES notification_templates_v2 (name)
                               ON UPDATE CASCADE,
    channels       TEXT    NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    updated_at_ms  INTEGER NOT NULL
);
INSERT INTO notification_rules_v2
       (id, name, event_type, recipients, template, channels, active, updated_at_ms)
SELECT id, name, event_type, recipients, template, channels, active, updated_at_ms
  FROM notification_rules;
DROP TABLE notification_rules;
DROP TABLE notification_templates;
ALTER TABLE notification_templates_v2 RENAME TO notification_templates;
ALTER TABLE notification_rules_v2 RENAME TO notification_rules;

-- The shipped templates get SMS and push parts, so a shop turns the channels on with a rule
-- change alone.
UPDATE notification_templates
   SET sms_text = 'Low stock: product {{ product_id }} has {{ available }} left in warehouse {{ warehouse_id }}.',
       push_title = 'Low stock: product {{ product_id }}',
       push_body = '{{ available }} left in warehouse {{ warehouse_id }} (threshold {{ threshold }}).'
 WHERE name = 'low_stock';
UPDATE notification_templates
   SET sms_text = 'Your order {{ order_id }} is now {{ to }}.',
       push_title = 'Order {{ order_id }} is {{ to }}',
       push_body = 'Your order {{ order_id }} went from {{ from }} to {{ to }}.'
 WHERE name = 'order_status_changed';

-- 2. Notifications travel by sms and push too; a push keeps the rendered url sealed like
--    its texts (link_enc). The sender's due index and the outbox index cover every outbound
--    channel (all but in_app).
CREATE TABLE notifications_v2 (
    id                 INTEGER PRIMARY KEY,
    user_id            INTEGER NOT NULL,
    channel            TEXT    NOT NULL CHECK (channel IN ('email', 'in_app', 'sms', 'push')),
    template           TEXT,
    rule               TEXT,
    event_seq          INTEGER,
    subject_enc        TEXT    NOT NULL,
    body_enc           TEXT    NOT NULL,
    link_enc           TEXT,
    status             TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error_enc     TEXT,
    next_attempt_at_ms INTEGER,
    lease_until_ms     INTEGER NOT NULL DEFAULT 0,
    read_at_ms         INTEGER,
    sent_at_ms         INTEGER,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
);
INSERT INTO notifications_v2
       (id, user_id, channel, template, rule, event_seq, subject_enc, body_enc, status,
        attempts, last_error_enc, next_attempt_at_ms, lease_until_ms, read_at_ms, sent_at_ms,
        created_at_ms, updated_at_ms)
SELECT id, user_id, channel, template, rule, event_seq, subject_enc, body_enc, status,
       attempts, last_error_enc, next_attempt_at_ms, lease_until_ms, read_at_ms, sent_at_ms,
       created_at_ms, updated_at_ms
  FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_v2 RENAME TO notifications;
CREATE INDEX notifications_inbox ON notifications (user_id, id) WHERE channel = 'in_app';
CREATE INDEX notifications_due ON notifications (next_attempt_at_ms)
    WHERE channel <> 'in_app' AND status IN ('queued', 'failed')
      AND next_attempt_at_ms IS NOT NULL;
CREATE INDEX notifications_outbox ON notifications (status, id) WHERE channel <> 'in_app';

-- 3. Preferences: a switch per new channel. No row, or a row from before: SMS off (a text
--    costs money and needs the user's opt-in), push on (like email and in-app).
ALTER TABLE notification_preferences ADD COLUMN sms INTEGER NOT NULL DEFAULT 0
    CHECK (sms IN (0, 1));
ALTER TABLE notification_preferences ADD COLUMN push INTEGER NOT NULL DEFAULT 1
    CHECK (push IN (0, 1));

-- 4. The number a user's SMS go to (E.164, parsed by the domain), sealed under the data key
--    and bound to the user. Push needs no address here: the gateway knows a user's devices.
CREATE TABLE notification_phones (
    user_id        INTEGER PRIMARY KEY,
    phone_enc      TEXT    NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);

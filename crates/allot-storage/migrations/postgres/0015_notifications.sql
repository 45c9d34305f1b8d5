-- Notifications (issue 8): templates, rules that turn events into notifications, each user's
-- channel preferences, the event-log consumer's cursor, and the notifications themselves (the
-- outbox: in-app ones are the inbox, email ones wait here for the sender).

-- A template has a part per channel; a channel whose part is NULL cannot use the template.
-- The texts are minijinja sources, checked to parse when saved. Rendered texts may hold personal
-- data (a template may render the user's email or an address), so notifications keep them, and
-- the last error (an SMTP error may quote an address), only sealed under the data key:
-- subject_enc (the email subject or in-app title), body_enc, last_error_enc.
CREATE TABLE notification_templates (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    email_subject  TEXT,
    email_body     TEXT,
    in_app_title   TEXT,
    in_app_body    TEXT,
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    CHECK ((email_subject IS NULL) = (email_body IS NULL)),
    CHECK ((in_app_title IS NULL) = (in_app_body IS NULL)),
    CHECK (email_subject IS NOT NULL OR in_app_title IS NOT NULL)
);

-- A rule: events of `event_type` notify `recipients` (`role:<role>` = every active user of the
-- role; `order_customer` = the customer of the event's order) on `channels` (comma-separated)
-- with `template`. A template in use by a rule cannot be deleted; a renamed one is followed.
CREATE TABLE notification_rules (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    recipients     TEXT    NOT NULL,
    template       TEXT    NOT NULL REFERENCES notification_templates (name)
                               ON UPDATE CASCADE,
    channels       TEXT    NOT NULL,
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at_ms  BIGINT  NOT NULL
);

-- Per user: `scope` '*' holds the user's channel switches; a rule's name overrides them for
-- that rule. No row: both channels on.
CREATE TABLE notification_preferences (
    user_id        BIGINT  NOT NULL,
    scope          TEXT    NOT NULL,
    email          BOOLEAN NOT NULL,
    in_app         BOOLEAN NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    PRIMARY KEY (user_id, scope)
);

-- The consumer's position in the event log, moved in the transaction that stores the
-- notifications of the events it passed. Starts at the log's head: history is not notified.
CREATE TABLE notification_cursor (
    consumer       TEXT    PRIMARY KEY,
    last_seq       BIGINT  NOT NULL,
    lease_owner    TEXT,
    lease_until_ms BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO notification_cursor (consumer, last_seq)
    SELECT 'rules', COALESCE(MAX(seq), 0) FROM events;

-- status: queued (not tried), sent, failed (retried at next_attempt_at_ms; given up when NULL).
-- lease_until_ms: a sender holds the row until then (a crashed sender's rows come back after).
CREATE TABLE notifications (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            BIGINT  NOT NULL,
    channel            TEXT    NOT NULL CHECK (channel IN ('email', 'in_app')),
    template           TEXT,
    rule               TEXT,
    event_seq          BIGINT,
    subject_enc        TEXT    NOT NULL,
    body_enc           TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts           BIGINT  NOT NULL DEFAULT 0,
    last_error_enc     TEXT,
    next_attempt_at_ms BIGINT,
    lease_until_ms     BIGINT  NOT NULL DEFAULT 0,
    read_at_ms         BIGINT,
    sent_at_ms         BIGINT,
    created_at_ms      BIGINT  NOT NULL,
    updated_at_ms      BIGINT  NOT NULL
);
CREATE INDEX notifications_inbox ON notifications (user_id, id) WHERE channel = 'in_app';
CREATE INDEX notifications_due ON notifications (next_attempt_at_ms)
    WHERE channel = 'email' AND status IN ('queued', 'failed') AND next_attempt_at_ms IS NOT NULL;

INSERT INTO notification_templates
    (name, email_subject, email_body, in_app_title, in_app_body, created_at_ms, updated_at_ms)
VALUES
    ('low_stock',
     'Low stock: product {{ product_id }} in warehouse {{ warehouse_id }}',
     'Product {{ product_id }} has {{ available }} available in warehouse {{ warehouse_id }} (threshold {{ threshold }}).',
     'Low stock: product {{ product_id }}',
     'Product {{ product_id }} has {{ available }} available in warehouse {{ warehouse_id }} (threshold {{ threshold }}).',
     0, 0),
    ('order_status_changed',
     'Your order {{ order_id }} is now {{ to }}',
     'Hello,

your order {{ order_id }} went from {{ from }} to {{ to }}.{% if reason %}
Reason: {{ reason }}{% endif %}
',
     'Order {{ order_id }} is {{ to }}',
     'Your order {{ order_id }} went from {{ from }} to {{ to }}.',
     0, 0);

INSERT INTO notification_rules (name, event_type, recipients, template, channels, updated_at_ms)
VALUES
    ('low_stock', 'InventoryThresholdReached', 'role:warehouse', 'low_stock', 'email,in_app', 0),
    ('order_status_changed', 'OrderStatusChanged', 'order_customer', 'order_status_changed',
     'email,in_app', 0);

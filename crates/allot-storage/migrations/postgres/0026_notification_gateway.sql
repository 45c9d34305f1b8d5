-- Issue 19: SMS and push notifications, delivered through the shop's HTTP gateway.
--
-- 1. Templates gain an SMS part (one text) and a push part (title, body, optional url), and a
--    template may now have any one part (0015's third unnamed CHECK, "email or in-app", is
--    replaced).
ALTER TABLE notification_templates
    ADD COLUMN sms_text   TEXT,
    ADD COLUMN push_title TEXT,
    ADD COLUMN push_body  TEXT,
    ADD COLUMN push_url   TEXT;
ALTER TABLE notification_templates DROP CONSTRAINT notification_templates_check2;
ALTER TABLE notification_templates
    ADD CONSTRAINT notification_templates_push_parts
        CHECK ((push_title IS NULL) = (push_body IS NULL)),
    ADD CONSTRAINT notification_templates_push_url
        CHECK (push_url IS NULL OR push_title IS NOT NULL),
    ADD CONSTRAINT notification_templates_some_part
        CHECK (email_subject IS NOT NULL OR in_app_title IS NOT NULL OR sms_text IS NOT NULL
               OR push_title IS NOT NULL);

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
ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_channel_check
        CHECK (channel IN ('email', 'in_app', 'sms', 'push')),
    ADD COLUMN link_enc TEXT;
DROP INDEX notifications_due;
CREATE INDEX notifications_due ON notifications (next_attempt_at_ms)
    WHERE channel <> 'in_app' AND status IN ('queued', 'failed')
      AND next_attempt_at_ms IS NOT NULL;
DROP INDEX notifications_outbox;
CREATE INDEX notifications_outbox ON notifications (status, id) WHERE channel <> 'in_app';

-- 3. Preferences: a switch per new channel. No row, or a row from before: SMS off (a text
--    costs money and needs the user's opt-in), push on (like email and in-app).
ALTER TABLE notification_preferences
    ADD COLUMN sms  BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN push BOOLEAN NOT NULL DEFAULT TRUE;

-- 4. The number a user's SMS go to (E.164, parsed by the domain), sealed under the data key
--    and bound to the user. Push needs no address here: the gateway knows a user's devices.
CREATE TABLE notification_phones (
    user_id        BIGINT  PRIMARY KEY,
    phone_enc      TEXT    NOT NULL,
    updated_at_ms  BIGINT  NOT NULL
);

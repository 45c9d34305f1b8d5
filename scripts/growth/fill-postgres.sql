-- scripts/bench-growth.sh, PostgreSQL: the same fill as fill-sqlite.sql (see there), with the
-- server stopped. Identities are given explicitly (OVERRIDING SYSTEM VALUE) and moved past
-- the filled rows after; events get their public seq directly (numbering any the sequencer
-- has not reached first, as it would). The log is three tables since migration 0030: the wide
-- rows (`event_rows`), their numbers (`event_numbers`) and the sequencer's markers; `events` is
-- a view for reading. Coupon counters are in slots since 0031 (the fill adds to slot 0).
\set ON_ERROR_STOP on
SET synchronous_commit = off;
SET work_mem = '256MB';
SET maintenance_work_mem = '512MB';
BEGIN;
WITH top AS (SELECT coalesce(max(seq), 0) AS s FROM event_numbers),
     taken AS (DELETE FROM event_unnumbered RETURNING ids),
     todo AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM taken, unnest(taken.ids) AS id)
INSERT INTO event_numbers (seq, id, type, actor)
  SELECT top.s + todo.n, todo.id, r.type, r.actor
  FROM todo CROSS JOIN top JOIN event_rows r ON r.id = todo.id;
-- New events: a wide row and its number each, ids and seqs given after the highest.
CREATE TEMP TABLE ev_base AS SELECT
  (SELECT coalesce(max(id), 0) FROM event_rows) AS id, (SELECT coalesce(max(seq), 0) FROM event_numbers) AS seq;
CREATE TEMP TABLE newev (n BIGINT, type TEXT, occurred_at_ms BIGINT, actor TEXT, payload JSONB, source TEXT);

CREATE TEMP TABLE tpl AS
  SELECT row_number() OVER (ORDER BY id) - 1 AS n, id FROM orders
  WHERE id IN (SELECT order_id FROM order_lines GROUP BY order_id HAVING count(*) = 3
               AND min(line_no) = 0 AND max(line_no) = 2);
CREATE TEMP TABLE b AS SELECT
  (SELECT max(id) FROM orders) AS o, (SELECT max(id) FROM reservations) AS r,
  (SELECT max(id) FROM stock_movements) AS m, (SELECT max(id) FROM order_status_history) AS h,
  (SELECT max(id) FROM coupon_redemptions) AS c, (SELECT count(*) FROM tpl) AS t,
  (SELECT max(seq) FROM event_numbers) AS e;
CREATE TEMP TABLE k AS
  SELECT s.k AS k, tpl.id AS tid, b.o + s.k + 1 AS oid, b.r + 3 * s.k AS r0
  FROM generate_series(0::bigint, @ORDERS@ - 1) AS s(k) CROSS JOIN b JOIN tpl ON tpl.n = s.k % b.t;
CREATE TEMP TABLE tl AS
  SELECT l.order_id, l.line_no, l.reservation_id FROM tpl JOIN order_lines l ON l.order_id = tpl.id;
CREATE TEMP TABLE tev AS
  SELECT tpl.id AS tid, e.seq AS seq, -1 AS line_no FROM events e
    JOIN tpl ON tpl.id = (e.payload->>'order_id')::bigint
  WHERE e.type IN ('OrderCreated', 'CouponRedeemed')
  UNION ALL
  SELECT tl.order_id, e.seq, tl.line_no FROM events e
    JOIN tl ON tl.reservation_id = (e.payload->>'reservation_id')::bigint
  WHERE e.type = 'InventoryReserved';
ANALYZE tpl; ANALYZE k; ANALYZE tl; ANALYZE tev;

INSERT INTO orders (id, customer, status, currency, shipping_address_enc, subtotal_minor,
    coupon_code, coupon_minor, discount_code, discount_minor, total_minor, idempotency_key,
    created_at_ms, updated_at_ms, shipping_minor, shipping_discount_minor, promotion_minor,
    promotion_hold_id, promotions)
  OVERRIDING SYSTEM VALUE
  SELECT k.oid, o.customer, o.status, o.currency, o.shipping_address_enc, o.subtotal_minor,
    o.coupon_code, o.coupon_minor, o.discount_code, o.discount_minor, o.total_minor, NULL,
    o.created_at_ms, o.updated_at_ms, o.shipping_minor, o.shipping_discount_minor,
    o.promotion_minor, o.promotion_hold_id, o.promotions
  FROM k JOIN orders o ON o.id = k.tid ORDER BY k.k;
INSERT INTO reservations (id, product_id, warehouse_id, quantity, holder, status,
    expires_at_ms, created_at_ms, updated_at_ms)
  OVERRIDING SYSTEM VALUE
  SELECT k.r0 + l.line_no + 1, r.product_id, r.warehouse_id, r.quantity, 'order-' || k.oid,
    r.status, r.expires_at_ms, r.created_at_ms, r.updated_at_ms
  FROM k JOIN order_lines l ON l.order_id = k.tid JOIN reservations r ON r.id = l.reservation_id
  ORDER BY k.k, l.line_no;
INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor,
    line_total_minor, warehouse_id, reservation_id, shipped_quantity)
  SELECT k.oid, l.line_no, l.product_id, l.sku, l.name, l.quantity, l.unit_price_minor,
    l.line_total_minor, l.warehouse_id, k.r0 + l.line_no + 1, l.shipped_quantity
  FROM k JOIN order_lines l ON l.order_id = k.tid ORDER BY k.k, l.line_no;
INSERT INTO stock_movements (id, product_id, warehouse_id, kind, on_hand_delta, reserved_delta,
    reservation_id, reason, at_ms)
  OVERRIDING SYSTEM VALUE
  SELECT b.m + 3 * k.k + l.line_no + 1, m.product_id, m.warehouse_id, m.kind, m.on_hand_delta,
    m.reserved_delta, k.r0 + l.line_no + 1, m.reason, m.at_ms
  FROM k CROSS JOIN b JOIN order_lines l ON l.order_id = k.tid
    JOIN stock_movements m ON m.reservation_id = l.reservation_id AND m.kind = 'reservation'
  ORDER BY k.k, l.line_no;
INSERT INTO order_status_history (id, order_id, from_status, to_status, reason, warehouse_id, at_ms)
  OVERRIDING SYSTEM VALUE
  SELECT b.h + k.k + 1, k.oid, h.from_status, h.to_status, h.reason, h.warehouse_id, h.at_ms
  FROM k CROSS JOIN b JOIN order_status_history h ON h.order_id = k.tid ORDER BY k.k;
INSERT INTO coupon_redemptions (id, code, type, user_id, redeemed_at_ms, order_id,
    reversed_at_ms, idempotency_key)
  OVERRIDING SYSTEM VALUE
  SELECT b.c + k.k + 1, c.code, c.type, c.user_id, c.redeemed_at_ms, k.oid, NULL, NULL
  FROM k CROSS JOIN b JOIN coupon_redemptions c ON c.order_id = k.tid ORDER BY k.k;
INSERT INTO newev (n, type, occurred_at_ms, actor, payload, source)
  SELECT row_number() OVER (ORDER BY k.k, e.seq), e.type,
    e.occurred_at_ms, e.actor,
    CASE e.type
      WHEN 'InventoryReserved' THEN jsonb_set(e.payload, '{reservation_id}', to_jsonb(k.r0 + tev.line_no + 1))
      WHEN 'OrderCreated' THEN jsonb_set(jsonb_set(jsonb_set(jsonb_set(e.payload,
        '{order_id}', to_jsonb(k.oid)), '{lines,0,reservation_id}', to_jsonb(k.r0 + 1)),
        '{lines,1,reservation_id}', to_jsonb(k.r0 + 2)), '{lines,2,reservation_id}', to_jsonb(k.r0 + 3))
      ELSE jsonb_set(e.payload, '{order_id}', to_jsonb(k.oid)) END,
    e.source
  FROM k JOIN tev ON tev.tid = k.tid JOIN events e ON e.seq = tev.seq
  ORDER BY k.k, e.seq;
UPDATE coupons SET uses = uses + n.c
  FROM (SELECT code, count(*) AS c FROM coupon_redemptions WHERE id > (SELECT c FROM b)
        GROUP BY code) n WHERE coupons.code = n.code;
UPDATE coupon_counters SET redeemed = redeemed + @ORDERS@ WHERE type = 'NONE' AND slot = 0;
UPDATE stock_levels s SET reserved = s.reserved + n.q
  FROM (SELECT product_id, warehouse_id, sum(quantity) AS q FROM reservations
        WHERE id > (SELECT r FROM b) GROUP BY 1, 2) n
  WHERE s.product_id = n.product_id AND s.warehouse_id = n.warehouse_id;
UPDATE stock_levels SET on_hand = reserved WHERE on_hand < reserved;

-- Campaign codes: a full campaign; on PostgreSQL the generator's prefix follows the campaign's
-- own seq (codes of other campaigns may share it, the random symbols keep them apart).
INSERT INTO campaigns (name, starts_at_ms, total, issued, created_at_ms)
  VALUES ('growth fill', 1577836800000, @CODES@, @CODES@, @NOW@);
CREATE TEMP TABLE f AS SELECT max(id) AS cid FROM campaigns;
INSERT INTO newev (n, type, occurred_at_ms, actor, payload, source)
  SELECT (SELECT count(*) FROM newev) + 1, 'CampaignCreated', @NOW@, 'api_key:1',
    jsonb_build_object('campaign_id', cid, 'ends_at_ms', NULL, 'name', 'growth fill',
      'per_user_limit', NULL, 'starts_at_ms', 1577836800000, 'total', @CODES@), '127.0.0.1'
  FROM f;
INSERT INTO campaign_coupons (campaign_id, seq, code, user_id, idempotency_key, issued_at_ms)
  SELECT f.cid, s.i, chr(44032 + (s.i / 64 / 11172)::int) || chr(44032 + (s.i / 64 % 11172)::int)
      || chr(44032 + (s.i % 64 * 174 + s.i * 7919 % 174)::int)
      || chr(44032 + (s.i * 2654435761 % 11172)::int) || chr(44032 + (s.i * 40503 % 11172)::int)
      || chr(44032 + (s.i * 97 % 11172)::int) || chr(44032 + (s.i * 1000003 % 11172)::int)
      || chr(44032 + (s.i * 31 % 11172)::int),
    NULL, NULL, @NOW@
  FROM generate_series(1::bigint, @CODES@) AS s(i) CROSS JOIN f;
INSERT INTO newev (n, type, occurred_at_ms, actor, payload, source)
  SELECT (SELECT count(*) FROM newev) + c.seq, 'CouponIssued', c.issued_at_ms, 'api_key:1',
    jsonb_build_object('campaign_id', c.campaign_id, 'code', c.code, 'seq', c.seq, 'user_id', NULL),
    '127.0.0.1'
  FROM f JOIN campaign_coupons c ON c.campaign_id = f.cid ORDER BY c.seq;

INSERT INTO event_rows (id, type, occurred_at_ms, actor, source, payload)
  OVERRIDING SYSTEM VALUE
  SELECT ev_base.id + n, type, occurred_at_ms, actor, source, payload
  FROM newev CROSS JOIN ev_base ORDER BY n;
INSERT INTO event_numbers (seq, id, type, actor)
  SELECT ev_base.seq + n, ev_base.id + n, type, actor FROM newev CROSS JOIN ev_base ORDER BY n;
SELECT setval(pg_get_serial_sequence('event_rows', 'id'), (SELECT max(id) FROM event_rows));

-- The notification consumer had passed the log's head before the fill: it is put past the
-- filled events too, as if it had read them as they came (none of them notifies anyone).
UPDATE notification_cursor SET last_seq = (SELECT max(seq) FROM event_numbers)
  WHERE last_seq >= (SELECT e FROM b);
SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));
SELECT setval(pg_get_serial_sequence('reservations', 'id'), (SELECT max(id) FROM reservations));
SELECT setval(pg_get_serial_sequence('stock_movements', 'id'), (SELECT max(id) FROM stock_movements));
SELECT setval(pg_get_serial_sequence('order_status_history', 'id'), (SELECT max(id) FROM order_status_history));
SELECT setval(pg_get_serial_sequence('coupon_redemptions', 'id'), (SELECT max(id) FROM coupon_redemptions));
COMMIT;
ANALYZE;
CHECKPOINT;

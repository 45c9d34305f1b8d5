-- scripts/bench-growth.sh, SQLite: rows of the product's shapes, set-based, with the server
-- stopped. @CODES@ campaign codes of a new full campaign (and one CouponIssued event each), and
-- @ORDERS@ orders cloned from the orders the API made (3 lines each: order, lines, status
-- history, reservations, stock movements, coupon redemption, and its 5 events).
-- A rollback journal for the fill (the WAL would take a copy of every page it writes); the
-- server's WAL mode back at the end.
PRAGMA journal_mode = DELETE;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
PRAGMA temp_store = MEMORY;
BEGIN;

-- Orders first: their template events are found by scanning the (still small) event log.
CREATE TEMP TABLE tpl AS
  SELECT row_number() OVER (ORDER BY id) - 1 AS n, id FROM orders
  WHERE id IN (SELECT order_id FROM order_lines GROUP BY order_id HAVING count(*) = 3
               AND min(line_no) = 0 AND max(line_no) = 2);
CREATE UNIQUE INDEX temp.tpl_id ON tpl (id);
CREATE TEMP TABLE b AS SELECT
  (SELECT max(id) FROM orders) AS o, (SELECT max(id) FROM reservations) AS r,
  (SELECT max(id) FROM stock_movements) AS m, (SELECT max(id) FROM order_status_history) AS h,
  (SELECT max(id) FROM coupon_redemptions) AS c, (SELECT count(*) FROM tpl) AS t,
  (SELECT max(seq) FROM events) AS e;
CREATE TEMP TABLE k AS
  WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k < @ORDERS@ - 1)
  SELECT s.k AS k, tpl.id AS tid, b.o + s.k + 1 AS oid, b.r + 3 * s.k AS r0
  FROM s CROSS JOIN b CROSS JOIN tpl WHERE tpl.n = s.k % b.t;
CREATE TEMP TABLE tl AS
  SELECT l.order_id, l.line_no, l.reservation_id FROM tpl CROSS JOIN order_lines l
  WHERE l.order_id = tpl.id;
CREATE UNIQUE INDEX temp.tl_res ON tl (reservation_id);
CREATE TEMP TABLE tev AS
  SELECT tpl.id AS tid, e.seq AS seq, -1 AS line_no FROM events e CROSS JOIN tpl
  WHERE e.type IN ('OrderCreated', 'CouponRedeemed') AND tpl.id = json_extract(e.payload, '$.order_id')
  UNION ALL
  SELECT tl.order_id, e.seq, tl.line_no FROM events e CROSS JOIN tl
  WHERE e.type = 'InventoryReserved' AND tl.reservation_id = json_extract(e.payload, '$.reservation_id');
CREATE INDEX temp.tev_tid ON tev (tid, seq);

INSERT INTO orders (id, customer, status, currency, shipping_address_enc, subtotal_minor,
    coupon_code, coupon_minor, discount_code, discount_minor, total_minor, idempotency_key,
    created_at_ms, updated_at_ms, shipping_minor, shipping_discount_minor, promotion_minor,
    promotion_hold_id, promotions)
  SELECT k.oid, o.customer, o.status, o.currency, o.shipping_address_enc, o.subtotal_minor,
    o.coupon_code, o.coupon_minor, o.discount_code, o.discount_minor, o.total_minor, NULL,
    o.created_at_ms, o.updated_at_ms, o.shipping_minor, o.shipping_discount_minor,
    o.promotion_minor, o.promotion_hold_id, o.promotions
  FROM k CROSS JOIN orders o WHERE o.id = k.tid ORDER BY k.k;
INSERT INTO reservations (id, product_id, warehouse_id, quantity, holder, status,
    expires_at_ms, created_at_ms, updated_at_ms)
  SELECT k.r0 + l.line_no + 1, r.product_id, r.warehouse_id, r.quantity, 'order-' || k.oid,
    r.status, r.expires_at_ms, r.created_at_ms, r.updated_at_ms
  FROM k CROSS JOIN order_lines l CROSS JOIN reservations r
  WHERE l.order_id = k.tid AND r.id = l.reservation_id ORDER BY k.k, l.line_no;
INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor,
    line_total_minor, warehouse_id, reservation_id, shipped_quantity)
  SELECT k.oid, l.line_no, l.product_id, l.sku, l.name, l.quantity, l.unit_price_minor,
    l.line_total_minor, l.warehouse_id, k.r0 + l.line_no + 1, l.shipped_quantity
  FROM k CROSS JOIN order_lines l WHERE l.order_id = k.tid ORDER BY k.k, l.line_no;
INSERT INTO stock_movements (id, product_id, warehouse_id, kind, on_hand_delta, reserved_delta,
    reservation_id, reason, at_ms)
  SELECT b.m + 3 * k.k + l.line_no + 1, m.product_id, m.warehouse_id, m.kind, m.on_hand_delta,
    m.reserved_delta, k.r0 + l.line_no + 1, m.reason, m.at_ms
  FROM k CROSS JOIN b CROSS JOIN order_lines l CROSS JOIN stock_movements m
  WHERE l.order_id = k.tid AND m.reservation_id = l.reservation_id AND m.kind = 'reservation'
  ORDER BY k.k, l.line_no;
INSERT INTO order_status_history (id, order_id, from_status, to_status, reason, warehouse_id, at_ms)
  SELECT b.h + k.k + 1, k.oid, h.from_status, h.to_status, h.reason, h.warehouse_id, h.at_ms
  FROM k CROSS JOIN b CROSS JOIN order_status_history h WHERE h.order_id = k.tid ORDER BY k.k;
INSERT INTO coupon_redemptions (id, code, type, user_id, redeemed_at_ms, order_id,
    reversed_at_ms, idempotency_key)
  SELECT b.c + k.k + 1, c.code, c.type, c.user_id, c.redeemed_at_ms, k.oid, NULL, NULL
  FROM k CROSS JOIN b CROSS JOIN coupon_redemptions c WHERE c.order_id = k.tid ORDER BY k.k;
INSERT INTO events (type, occurred_at_ms, actor, payload, source)
  SELECT e.type, e.occurred_at_ms, e.actor,
    CASE e.type
      WHEN 'InventoryReserved' THEN json_set(e.payload, '$.reservation_id', k.r0 + tev.line_no + 1)
      WHEN 'OrderCreated' THEN json_set(e.payload, '$.order_id', k.oid,
        '$.lines[0].reservation_id', k.r0 + 1, '$.lines[1].reservation_id', k.r0 + 2,
        '$.lines[2].reservation_id', k.r0 + 3)
      ELSE json_set(e.payload, '$.order_id', k.oid) END,
    e.source
  FROM k CROSS JOIN tev CROSS JOIN events e WHERE tev.tid = k.tid AND e.seq = tev.seq
  ORDER BY k.k, e.seq;
-- The counters the stored rows imply: coupon uses and redeemed, reserved stock.
UPDATE coupons SET uses = uses + (SELECT count(*) FROM coupon_redemptions c
    WHERE c.code = coupons.code AND c.id > (SELECT c FROM b))
  WHERE code IN (SELECT code FROM coupon_redemptions WHERE id > (SELECT c FROM b));
UPDATE coupon_counters SET redeemed = redeemed + @ORDERS@ WHERE type = 'NONE';
UPDATE stock_levels SET reserved = reserved + coalesce((SELECT sum(r.quantity) FROM reservations r
    WHERE r.id > (SELECT r FROM b) AND r.product_id = stock_levels.product_id
      AND r.warehouse_id = stock_levels.warehouse_id), 0);
UPDATE stock_levels SET on_hand = reserved WHERE on_hand < reserved;

-- Campaign codes: a full campaign of @CODES@, codes going on from the stored ones as the
-- server's generator would (two Hangul syllables advancing every 64 issues, six more).
INSERT INTO campaigns (name, starts_at_ms, total, issued, created_at_ms)
  VALUES ('growth fill', 1577836800000, @CODES@, @CODES@, @NOW@);
CREATE TEMP TABLE f AS SELECT last_insert_rowid() AS cid, coalesce(
  (SELECT ((unicode(substr(m, 1, 1)) - 44032) * 11172 + unicode(substr(m, 2, 1)) - 44032 + 1) * 64
   FROM (SELECT max(code) AS m FROM campaign_coupons) WHERE m IS NOT NULL), 0) AS s0;
INSERT INTO events (type, occurred_at_ms, actor, payload, source)
  SELECT 'CampaignCreated', @NOW@, 'api_key:1', json_object('campaign_id', cid, 'ends_at_ms', NULL,
    'name', 'growth fill', 'per_user_limit', NULL, 'starts_at_ms', 1577836800000, 'total', @CODES@),
    '127.0.0.1' FROM f;
INSERT INTO campaign_coupons (campaign_id, seq, code, user_id, idempotency_key, issued_at_ms)
  WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < @CODES@ - 1)
  SELECT f.cid, s.i + 1, char(
      44032 + ((f.s0 + s.i) / 64) / 11172, 44032 + ((f.s0 + s.i) / 64) % 11172,
      44032 + ((f.s0 + s.i) % 64) * 174 + (s.i * 7919) % 174,
      44032 + (s.i * 2654435761) % 11172, 44032 + (s.i * 40503) % 11172,
      44032 + (s.i * 97) % 11172, 44032 + (s.i * 1000003) % 11172, 44032 + (s.i * 31) % 11172),
    NULL, NULL, @NOW@
  FROM s CROSS JOIN f;
INSERT INTO events (type, occurred_at_ms, actor, payload, source)
  SELECT 'CouponIssued', c.issued_at_ms, 'api_key:1', json_object('campaign_id', c.campaign_id,
    'code', c.code, 'seq', c.seq, 'user_id', NULL), '127.0.0.1'
  FROM f CROSS JOIN campaign_coupons c WHERE c.campaign_id = f.cid ORDER BY c.seq;
-- The notification consumer had passed the log's head before the fill: it is put past the
-- filled events too, as if it had read them as they came (none of them notifies anyone).
UPDATE notification_cursor SET last_seq = (SELECT max(seq) FROM events)
  WHERE last_seq >= (SELECT e FROM b);
COMMIT;
PRAGMA journal_mode = WAL;

-- Writes that keep their Idempotency-Key in their own transaction (issue 20), as orders and
-- campaign issues do: a retry answers the first outcome and changes nothing, even after a
-- crash between the commit and the answer. Each keeps the key as its caller's ("owner key",
-- `IdempotencyKey::owned_by`); rows made without a key keep none.

-- A batch of discount codes keeps its codes too (one space between them): a retry answers
-- them, and a second batch (codes nobody was given) is never made. The idempotency keys'
-- purge clears both after the keys' retention.
ALTER TABLE discount_code_batches ADD COLUMN idempotency_key TEXT;
ALTER TABLE discount_code_batches ADD COLUMN codes TEXT;
CREATE UNIQUE INDEX discount_code_batches_idempotency_key
    ON discount_code_batches (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- A redemption over the API (the key as "owner code key": scoped to its coupon as the
-- middleware scopes a key to its path): a retry of a redemption of a coupon of many uses
-- would otherwise spend a second use. The purge forgets the key after the keys' retention.
ALTER TABLE coupon_redemptions ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX coupon_redemptions_idempotency_key
    ON coupon_redemptions (idempotency_key) WHERE idempotency_key IS NOT NULL;

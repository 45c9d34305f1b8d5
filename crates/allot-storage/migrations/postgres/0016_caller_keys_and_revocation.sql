-- Issue 13: idempotency keys belong to their caller, and revocation takes effect. The
-- PostgreSQL twin of migrations/sqlite/0016 (see there for why).
-- Answers kept so far get the empty owner, which no caller has.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (owner, key, method, path);

UPDATE orders SET idempotency_key = 'user:' || customer || ' ' || idempotency_key
 WHERE idempotency_key IS NOT NULL;
UPDATE campaign_coupons
   SET idempotency_key = COALESCE('user:' || user_id, 'anonymous') || ' ' || idempotency_key
 WHERE idempotency_key IS NOT NULL;

ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
CREATE FUNCTION users_token_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.active IS DISTINCT FROM NEW.active OR OLD.role IS DISTINCT FROM NEW.role
       OR OLD.password_hash IS DISTINCT FROM NEW.password_hash THEN
        NEW.token_generation := OLD.token_generation + 1;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER users_token_generation BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_token_generation();

ALTER TABLE refresh_tokens ADD COLUMN family_started_at_ms BIGINT;
UPDATE refresh_tokens SET family_started_at_ms = created_at_ms;

DELETE FROM idempotency_keys;
ALTER TABLE idempotency_keys DROP COLUMN principal_hash;
COMMENT ON COLUMN idempotency_keys.response IS NULL;

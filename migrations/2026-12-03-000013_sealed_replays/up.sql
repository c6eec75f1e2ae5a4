-- A stored first answer is sealed with the PII key (it may hold personal data unmasked for a
-- pii_reader) and bound to the whole principal that made it (roles, region, unit): a replay
-- by the same sub with other claims is refused instead of shown an answer it could not get
-- fresh. Answers stored before in clear cannot be sealed here (the key is not in the
-- database): they are dropped; a resend of one of them runs again, and the mutations' own
-- guards (expected versions, natural keys) hold.
DELETE FROM idempotency_keys;
ALTER TABLE idempotency_keys ADD COLUMN principal_hash bytea NOT NULL;
COMMENT ON COLUMN idempotency_keys.response IS 'the first answer, sealed with the PII key (crypto::PiiCipher)';

-- The foundation: the region registry of the one net, workers and departments,
-- the hash-chained audit trail and the shared idempotency store.
CREATE EXTENSION IF NOT EXISTS postgis;

-- Regions from province down to micro-grid. Codes are hierarchical by prefix and have a
-- fixed length per level (2, 4, 6, 9, 12, 15, 18), so "the subtree of X" is `code LIKE 'X%'`.
CREATE TABLE regions (
    code text PRIMARY KEY CHECK (code ~ '^[0-9]+$' AND length(code) IN (2, 4, 6, 9, 12, 15, 18)),
    name text NOT NULL CHECK (name <> ''),
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 7),
    parent_code text REFERENCES regions (code),
    boundary geometry(MultiPolygon, 4326),
    fallback_owner text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((parent_code IS NULL) = (level = 1))
);
CREATE INDEX regions_parent_idx ON regions (parent_code, code);
CREATE INDEX regions_code_prefix_idx ON regions (code text_pattern_ops);
CREATE INDEX regions_boundary_gist ON regions USING gist (boundary) WHERE boundary IS NOT NULL;

-- Handling units (departments) that cases are dispatched to.
CREATE TABLE departments (
    code text PRIMARY KEY CHECK (code <> ''),
    name text NOT NULL CHECK (name <> ''),
    region_code text NOT NULL REFERENCES regions (code),
    kind text NOT NULL DEFAULT '',
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX departments_region_idx ON departments (region_code text_pattern_ops);

-- Grid workers. The phone is personal data: stored only encrypted (key id || nonce ||
-- ciphertext) with a keyed HMAC blind index for exact look-ups.
CREATE TABLE workers (
    worker_id text PRIMARY KEY CHECK (worker_id <> ''),
    name text NOT NULL CHECK (name <> ''),
    phone_enc bytea,
    phone_index bytea,
    region_code text NOT NULL REFERENCES regions (code),
    grid_codes text[] NOT NULL DEFAULT '{}',
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workers_region_idx ON workers (region_code text_pattern_ops);
CREATE INDEX workers_grids_idx ON workers USING gin (grid_codes);
CREATE INDEX workers_phone_index_idx ON workers (phone_index);

-- The audit trail: append-only, one hash chain over all events (seq without gaps). Events
-- of one transaction are appended together under a transaction-scoped advisory lock taken
-- just before commit, so the serialization point is short.
CREATE TABLE audit_events (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    occurred_at timestamptz NOT NULL,
    actor text NOT NULL,
    actor_roles text[] NOT NULL,
    action text NOT NULL,
    entity_type text NOT NULL,
    entity_id text NOT NULL,
    region_code text NOT NULL,
    before jsonb,
    after jsonb,
    outcome text NOT NULL,
    request_id text NOT NULL DEFAULT '',
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);
CREATE INDEX audit_events_entity_idx ON audit_events (entity_type, entity_id, seq);
CREATE INDEX audit_events_region_idx ON audit_events (region_code text_pattern_ops, seq);
CREATE INDEX audit_events_time_idx ON audit_events (occurred_at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Idempotency (AIP-155) for every mutating RPC: the first response is kept, keyed by the
-- caller and its request_id, with a hash of the payload to tell a resend from a reuse.
CREATE TABLE idempotency_keys (
    principal text NOT NULL,
    request_id uuid NOT NULL,
    method text NOT NULL,
    payload_hash bytea NOT NULL,
    response bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, request_id)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

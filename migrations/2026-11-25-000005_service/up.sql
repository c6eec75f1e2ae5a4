-- Issue 5: the power/responsibility list (权责清单), service requests (便民服务, 12345 work
-- orders) and the hotline outbox.

-- One row per version of a town's catalog item. Rows are never updated: a change is a new
-- version with its own effective dates, a withdrawal (收回) a version with `withdrawn`. The
-- item in force on a day is the highest version whose `effective_from` is on or before it,
-- unless that version is withdrawn or ended (`effective_to` before the day).
CREATE TABLE catalog_items (
    town_code text NOT NULL REFERENCES regions (code),
    code text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    version integer NOT NULL CHECK (version >= 1),
    name text NOT NULL CHECK (name <> ''),
    kind text NOT NULL,
    source_department text NOT NULL DEFAULT '',
    delegation text NOT NULL,
    legal_basis text NOT NULL DEFAULT '',
    time_limit_days integer CHECK (time_limit_days BETWEEN 1 AND 365),
    effective_from date NOT NULL,
    effective_to date CHECK (effective_to IS NULL OR effective_to >= effective_from),
    withdrawn boolean NOT NULL DEFAULT false,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by text NOT NULL,
    PRIMARY KEY (town_code, code, version)
);

CREATE SEQUENCE service_request_serial;

-- A request at the service window or from the 12345 hotline. The applicant (name, phone,
-- ID number) is stored only as one ciphertext, with a blind index of the phone for look-ups.
CREATE TABLE service_requests (
    sr_id uuid PRIMARY KEY,
    request_no text NOT NULL UNIQUE,
    kind text NOT NULL,
    urgency text NOT NULL,
    catalog_item_code text NOT NULL DEFAULT '',
    catalog_item_version integer,
    region_code text NOT NULL REFERENCES regions (code),
    content text NOT NULL,
    address text NOT NULL DEFAULT '',
    applicant_enc bytea NOT NULL,
    applicant_phone_index bytea,
    on_behalf boolean NOT NULL DEFAULT false,
    filed_by text NOT NULL,
    status text NOT NULL,
    assignee text NOT NULL DEFAULT '',
    flags text[] NOT NULL DEFAULT '{}',
    accepted_at timestamptz NOT NULL,
    assigned_at timestamptz,
    signed_at timestamptz,
    replied_at timestamptz,
    visited_at timestamptz,
    archived_at timestamptz,
    deadline timestamptz,
    extension_days integer,
    urge_count integer NOT NULL DEFAULT 0,
    reopen_count integer NOT NULL DEFAULT 0,
    reply text NOT NULL DEFAULT '',
    satisfaction text NOT NULL DEFAULT '',
    dissatisfied_count integer NOT NULL DEFAULT 0,
    hotline_order_no text UNIQUE,
    version bigint NOT NULL DEFAULT 1
);
CREATE INDEX service_requests_region_idx ON service_requests (region_code text_pattern_ops, sr_id);
CREATE INDEX service_requests_assignee_idx ON service_requests (assignee) WHERE assignee <> '';

-- The 12345 side of a request: the work order version applied, a hash of its payload (to tell
-- a resend from a conflicting one) and, for a located order, the report it became in the one
-- net (its case is the report's case, so merges and splits are followed).
CREATE TABLE hotline_orders (
    order_no text PRIMARY KEY CHECK (order_no ~ '^[A-Za-z0-9_-]{1,64}$'),
    sr_id uuid NOT NULL UNIQUE REFERENCES service_requests (sr_id),
    version integer NOT NULL CHECK (version >= 1),
    payload_hash bytea NOT NULL,
    report_id uuid REFERENCES reports (report_id),
    lat double precision,
    lng double precision,
    received_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX hotline_orders_report_idx ON hotline_orders (report_id) WHERE report_id IS NOT NULL;

-- What the hub owes the 12345 platform (签收, 回复, 退回, 延期申请). Each row is captured from
-- a `hotline.update` audit event by the trigger below, so an update exists if and only if the
-- transaction that made it committed, and `seq` (the event's sequence, assigned under the
-- audit chain's lock) is commit order: PullUpdates reads by it without gaps.
CREATE TABLE hotline_outbox (
    seq bigint PRIMARY KEY,
    update_id uuid NOT NULL UNIQUE,
    order_no text NOT NULL,
    region_code text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'DELIVERED', 'DEAD')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text NOT NULL DEFAULT '',
    delivered_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX hotline_outbox_due_idx ON hotline_outbox (next_attempt_at, seq) WHERE state = 'PENDING';
CREATE INDEX hotline_outbox_order_idx ON hotline_outbox (order_no, seq) WHERE state <> 'DELIVERED';
CREATE INDEX hotline_outbox_region_idx ON hotline_outbox (region_code text_pattern_ops, seq);

CREATE FUNCTION hotline_outbox_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hotline_outbox (seq, update_id, order_no, region_code, payload, created_at)
    VALUES (NEW.seq, (NEW.after ->> 'update_id')::uuid, NEW.entity_id, NEW.region_code,
            NEW.after, NEW.occurred_at);
    RETURN NULL;
END $$;
CREATE TRIGGER audit_events_hotline_outbox AFTER INSERT ON audit_events
    FOR EACH ROW WHEN (NEW.action = 'hotline.update') EXECUTE FUNCTION hotline_outbox_capture();

-- Issue 6: mediation records (矛盾纠纷调解) with protected personal data.

CREATE SEQUENCE mediation_serial;

-- One dispute. Parties, sessions, agreement versions and follow-ups are rows of their own,
-- only ever appended (follow-ups are filled in once).
CREATE TABLE mediation_cases (
    case_id uuid PRIMARY KEY,
    case_no text NOT NULL UNIQUE,
    source text NOT NULL,
    linked_case_id uuid REFERENCES cases (case_id),
    hotline_order_no text,
    region_code text NOT NULL REFERENCES regions (code),
    dispute_type text NOT NULL,
    kind text NOT NULL,
    team text NOT NULL,
    mediators text[] NOT NULL DEFAULT '{}',
    status text NOT NULL,
    -- SUCCEEDED or FAILED once decided (kept when the case closes).
    outcome text NOT NULL DEFAULT '',
    summary text NOT NULL,
    referral text NOT NULL DEFAULT '',
    referral_note text NOT NULL DEFAULT '',
    registered_at timestamptz NOT NULL,
    outcome_at timestamptz,
    closed_at timestamptz,
    created_by text NOT NULL,
    version bigint NOT NULL DEFAULT 1
);
CREATE INDEX mediation_cases_region_idx ON mediation_cases (region_code text_pattern_ops, case_id);
CREATE INDEX mediation_cases_town_registered_idx ON mediation_cases (left(region_code, 9), registered_at);

-- Parties: every personal field is ciphertext (key id || nonce || ciphertext+tag); the
-- blind indexes (keyed HMAC) of the ID number and the phone find a person's disputes.
CREATE TABLE mediation_parties (
    case_id uuid NOT NULL REFERENCES mediation_cases (case_id),
    position smallint NOT NULL,
    role text NOT NULL,
    name_enc bytea NOT NULL,
    id_number_enc bytea,
    phone_enc bytea,
    address_enc bytea,
    id_index bytea,
    phone_index bytea,
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (case_id, position)
);
CREATE INDEX mediation_parties_id_index_idx ON mediation_parties (id_index, registered_at) WHERE id_index IS NOT NULL;
CREATE INDEX mediation_parties_phone_index_idx ON mediation_parties (phone_index, registered_at) WHERE phone_index IS NOT NULL;

CREATE TABLE mediation_sessions (
    case_id uuid NOT NULL REFERENCES mediation_cases (case_id),
    number integer NOT NULL,
    held_at timestamptz NOT NULL,
    place text NOT NULL,
    participants text[] NOT NULL DEFAULT '{}',
    summary text NOT NULL,
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (case_id, number)
);

CREATE TABLE mediation_agreements (
    case_id uuid NOT NULL REFERENCES mediation_cases (case_id),
    version integer NOT NULL,
    written boolean NOT NULL,
    text text NOT NULL,
    amount_fen bigint NOT NULL DEFAULT 0 CHECK (amount_fen >= 0),
    performance_deadline date,
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (case_id, version)
);

CREATE TABLE mediation_follow_ups (
    case_id uuid NOT NULL REFERENCES mediation_cases (case_id),
    number integer NOT NULL,
    due_on date NOT NULL,
    done_at timestamptz,
    performed boolean,
    note text NOT NULL DEFAULT '',
    recorded_by text NOT NULL DEFAULT '',
    PRIMARY KEY (case_id, number)
);
CREATE INDEX mediation_follow_ups_open_idx ON mediation_follow_ups (due_on) WHERE done_at IS NULL;

-- Refuse edits of the append-only parts.
CREATE FUNCTION mediation_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never changed: append a new one', TG_TABLE_NAME;
END $$;
CREATE TRIGGER mediation_sessions_append_only BEFORE UPDATE OR DELETE ON mediation_sessions
    FOR EACH ROW EXECUTE FUNCTION mediation_append_only();
CREATE TRIGGER mediation_agreements_append_only BEFORE UPDATE OR DELETE ON mediation_agreements
    FOR EACH ROW EXECUTE FUNCTION mediation_append_only();

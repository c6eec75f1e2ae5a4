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
    -- For the statistics without a look-up per case: the latest agreement's performance
    -- deadline, and what the first follow-up found.
    agreement_deadline date,
    performed boolean,
    created_by text NOT NULL,
    version bigint NOT NULL DEFAULT 1
);
CREATE INDEX mediation_cases_region_idx ON mediation_cases (region_code text_pattern_ops, case_id);
CREATE INDEX mediation_cases_region_registered_idx ON mediation_cases (region_code text_pattern_ops, registered_at);
-- The partial months of a county-wide statistic: a time range, whatever the village.
CREATE INDEX mediation_cases_registered_idx ON mediation_cases (registered_at);

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

-- Statistics without scanning every case: per village, local month (China Standard Time) of
-- registration, dispute type, team, kind, outcome and performance, the number of cases and the
-- seconds from registration to outcome. Kept by triggers in the transaction of each change;
-- GetMediationStats reads whole months here and only the cases of partial months.
CREATE TABLE mediation_stats (
    region_code text NOT NULL,
    month date NOT NULL,
    dispute_type text NOT NULL,
    team text NOT NULL,
    kind text NOT NULL,
    outcome text NOT NULL,
    with_deadline boolean NOT NULL,
    performed boolean NOT NULL,
    cases bigint NOT NULL,
    secs double precision NOT NULL,
    PRIMARY KEY (region_code, month, dispute_type, team, kind, outcome, with_deadline, performed)
);
CREATE INDEX mediation_stats_region_month_idx ON mediation_stats (region_code text_pattern_ops, month);

CREATE FUNCTION mediation_stats_add(r mediation_cases, sign integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO mediation_stats
    VALUES (r.region_code, date_trunc('month', r.registered_at AT TIME ZONE 'UTC' + interval '8 hours')::date,
            r.dispute_type, r.team, r.kind, r.outcome, r.agreement_deadline IS NOT NULL,
            COALESCE(r.performed, false), sign,
            sign * COALESCE(EXTRACT(EPOCH FROM (r.outcome_at - r.registered_at)), 0))
    ON CONFLICT (region_code, month, dispute_type, team, kind, outcome, with_deadline, performed)
    DO UPDATE SET cases = mediation_stats.cases + EXCLUDED.cases, secs = mediation_stats.secs + EXCLUDED.secs
$$;

CREATE FUNCTION mediation_stats_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM mediation_stats_add(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM mediation_stats_add(NEW, 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mediation_cases_stats_ins_del AFTER INSERT OR DELETE ON mediation_cases
    FOR EACH ROW EXECUTE FUNCTION mediation_stats_apply();
CREATE TRIGGER mediation_cases_stats_upd AFTER UPDATE ON mediation_cases
    FOR EACH ROW WHEN (OLD.outcome IS DISTINCT FROM NEW.outcome
                       OR OLD.outcome_at IS DISTINCT FROM NEW.outcome_at
                       OR OLD.agreement_deadline IS DISTINCT FROM NEW.agreement_deadline
                       OR OLD.performed IS DISTINCT FROM NEW.performed
                       OR OLD.region_code IS DISTINCT FROM NEW.region_code
                       OR OLD.team IS DISTINCT FROM NEW.team
                       OR OLD.dispute_type IS DISTINCT FROM NEW.dispute_type
                       OR OLD.kind IS DISTINCT FROM NEW.kind)
    EXECUTE FUNCTION mediation_stats_apply();

-- The command centre: the case workflow, working-day deadlines, dashboard aggregates and
-- early warnings.

-- The working-day calendar is data: Monday–Friday are working days except the listed public
-- holidays (working = false); listed weekend days are adjusted working days (调休, working = true).
CREATE TABLE calendar_days (
    day date PRIMARY KEY,
    working boolean NOT NULL,
    name text NOT NULL DEFAULT ''
);

-- Time limits per class; NULL = the server's configured default.
ALTER TABLE categories
    ADD COLUMN sign_limit_hours integer CHECK (sign_limit_hours BETWEEN 1 AND 240),
    ADD COLUMN handle_limit_days integer CHECK (handle_limit_days BETWEEN 1 AND 365);

-- The workflow's state on the case. `assignee` is the handling unit (department code or
-- worker id) once dispatched; `deadline` is the handling deadline (moved by approved
-- extensions); `urge_at` and `escalate_at` are when the SLA ticker issues the automatic 催办
-- and the 通报 if the case is still overdue, fixed on the working-day calendar with the deadline.
ALTER TABLE cases
    ADD COLUMN assignee text NOT NULL DEFAULT '',
    ADD COLUMN registered_at timestamptz,
    ADD COLUMN dispatched_at timestamptz,
    ADD COLUMN signed_at timestamptz,
    ADD COLUMN handled_at timestamptz,
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN sign_deadline timestamptz,
    ADD COLUMN deadline timestamptz,
    ADD COLUMN urge_at timestamptz,
    ADD COLUMN escalate_at timestamptz,
    ADD COLUMN extension_days integer,
    ADD COLUMN urge_count integer NOT NULL DEFAULT 0;
-- The SLA ticker's look-ups.
CREATE INDEX cases_deadline_idx ON cases (deadline) WHERE status IN ('DISPATCHED', 'SIGNED');
CREATE INDEX cases_sign_deadline_idx ON cases (sign_deadline) WHERE status = 'DISPATCHED';
CREATE INDEX cases_urge_idx ON cases (urge_at) WHERE urge_at IS NOT NULL;
CREATE INDEX cases_escalate_idx ON cases (escalate_at) WHERE escalate_at IS NOT NULL;
CREATE INDEX cases_assignee_idx ON cases (assignee) WHERE assignee <> '';

-- Reports may carry the reporter's or caller's phone: encrypted, with a keyed blind index
-- for the repeat-caller warning.
ALTER TABLE reports
    ADD COLUMN reporter_phone_enc bytea,
    ADD COLUMN reporter_phone_index bytea;
CREATE INDEX reports_phone_idx ON reports (reporter_phone_index, occurred_at) WHERE reporter_phone_index IS NOT NULL;
CREATE INDEX reports_grid_category_idx ON reports (region_code, unified_category, occurred_at);

-- Dashboard aggregates, maintained as cases change. `overdue` counts open cases flagged OVERDUE
-- (a closed case keeps the flag as history). Each case contributes a vector (1 case,
-- closed on time or not, seconds spent in each stage) to the key of its current state. A
-- change of a case inserts the difference (old vector negated, new vector added) into
-- `case_stats_delta`: insert-only, so writers never wait on each other for a hot counter.
-- The SLA ticker folds the deltas into `case_stats` (under an advisory lock); readers sum both.
CREATE TABLE case_stats (
    region_code text NOT NULL,
    day date NOT NULL,
    category text NOT NULL,
    status text NOT NULL,
    assignee text NOT NULL,
    overdue boolean NOT NULL,
    cases bigint NOT NULL,
    closed_on_time bigint NOT NULL,
    register_n bigint NOT NULL,
    register_secs double precision NOT NULL,
    dispatch_n bigint NOT NULL,
    dispatch_secs double precision NOT NULL,
    sign_n bigint NOT NULL,
    sign_secs double precision NOT NULL,
    handle_n bigint NOT NULL,
    handle_secs double precision NOT NULL,
    verify_n bigint NOT NULL,
    verify_secs double precision NOT NULL,
    PRIMARY KEY (region_code, day, category, status, assignee, overdue)
);
CREATE INDEX case_stats_region_day_idx ON case_stats (region_code text_pattern_ops, day);

CREATE TABLE case_stats_delta (LIKE case_stats);
ALTER TABLE case_stats_delta ADD COLUMN id bigserial PRIMARY KEY;
CREATE INDEX case_stats_delta_region_idx ON case_stats_delta (region_code text_pattern_ops, day);

-- The key and vector of case rows, summed with `sg` = -1 (old rows) or +1 (new rows); only
-- keys whose vector actually changed are written.
CREATE FUNCTION case_stats_apply(olds cases[], news cases[]) RETURNS void
LANGUAGE sql AS $$
INSERT INTO case_stats_delta (region_code, day, category, status, assignee, overdue, cases, closed_on_time,
        register_n, register_secs, dispatch_n, dispatch_secs, sign_n, sign_secs, handle_n, handle_secs, verify_n, verify_secs)
SELECT region_code, day, category, status, assignee, overdue, sum(sg), sum(sg * on_time),
       sum(sg * (t_register IS NOT NULL)::int), coalesce(sum(sg * t_register), 0),
       sum(sg * (t_dispatch IS NOT NULL)::int), coalesce(sum(sg * t_dispatch), 0),
       sum(sg * (t_sign IS NOT NULL)::int), coalesce(sum(sg * t_sign), 0),
       sum(sg * (t_handle IS NOT NULL)::int), coalesce(sum(sg * t_handle), 0),
       sum(sg * (t_verify IS NOT NULL)::int), coalesce(sum(sg * t_verify), 0)
  FROM (
    SELECT u.sg, u.region_code, (u.first_reported_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
           u.unified_category AS category, u.status, u.assignee,
           ('OVERDUE' = ANY (u.flags) AND u.status IN ('DISPATCHED', 'SIGNED', 'HANDLED')) AS overdue,
           (u.status = 'CLOSED' AND (u.deadline IS NULL OR u.handled_at <= u.deadline))::int AS on_time,
           extract(epoch FROM u.registered_at - u.first_reported_at) AS t_register,
           extract(epoch FROM u.dispatched_at - u.registered_at) AS t_dispatch,
           extract(epoch FROM u.signed_at - u.dispatched_at) AS t_sign,
           extract(epoch FROM u.handled_at - u.signed_at) AS t_handle,
           extract(epoch FROM u.closed_at - u.handled_at) AS t_verify
      FROM (SELECT -1 AS sg, o.* FROM unnest(olds) o
            UNION ALL SELECT 1, n.* FROM unnest(news) n) u
  ) v
 GROUP BY region_code, day, category, status, assignee, overdue
HAVING sum(sg) <> 0 OR sum(sg * on_time) <> 0
    OR coalesce(sum(sg * t_register), 0) <> 0 OR coalesce(sum(sg * t_dispatch), 0) <> 0
    OR coalesce(sum(sg * t_sign), 0) <> 0 OR coalesce(sum(sg * t_handle), 0) <> 0
    OR coalesce(sum(sg * t_verify), 0) <> 0
    OR sum(sg * (t_register IS NOT NULL)::int) <> 0 OR sum(sg * (t_dispatch IS NOT NULL)::int) <> 0
    OR sum(sg * (t_sign IS NOT NULL)::int) <> 0 OR sum(sg * (t_handle IS NOT NULL)::int) <> 0
    OR sum(sg * (t_verify IS NOT NULL)::int) <> 0
$$;

CREATE FUNCTION cases_stats_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM case_stats_apply('{}'::cases[], array(SELECT n::cases FROM new_rows n));
    RETURN NULL;
END $$;
CREATE FUNCTION cases_stats_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM case_stats_apply(array(SELECT o::cases FROM old_rows o), array(SELECT n::cases FROM new_rows n));
    RETURN NULL;
END $$;
CREATE FUNCTION cases_stats_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM case_stats_apply(array(SELECT o::cases FROM old_rows o), '{}'::cases[]);
    RETURN NULL;
END $$;
CREATE TRIGGER cases_stats_insert AFTER INSERT ON cases REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cases_stats_inserted();
CREATE TRIGGER cases_stats_update AFTER UPDATE ON cases REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cases_stats_updated();
CREATE TRIGGER cases_stats_delete AFTER DELETE ON cases REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cases_stats_deleted();

-- Rollups for large regions: per town and month (the same vector), and cases per grid and
-- month. A dashboard for a town or above reads whole months from these and only the days of
-- partial months from `case_stats`; smaller regions read `case_stats` alone.
CREATE TABLE case_stats_town_month (LIKE case_stats INCLUDING ALL);
CREATE TABLE case_grid_month (
    region_code text NOT NULL,
    day date NOT NULL,
    cases bigint NOT NULL,
    PRIMARY KEY (region_code, day)
);
-- A town's days (and grids' months) as one index range each.
CREATE INDEX case_stats_town_day_idx ON case_stats (left(region_code, 9), day);
CREATE INDEX case_grid_month_town_idx ON case_grid_month (left(region_code, 9), day);

-- Adds `src` rows (a temporary table of the same columns as case_stats) into `target`.
CREATE FUNCTION case_stats_add(target regclass, src text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'INSERT INTO %s AS s (region_code, day, category, status, assignee, overdue, cases, closed_on_time,
                register_n, register_secs, dispatch_n, dispatch_secs, sign_n, sign_secs, handle_n, handle_secs,
                verify_n, verify_secs)
         SELECT region_code, day, category, status, assignee, overdue, sum(cases), sum(closed_on_time),
                sum(register_n), sum(register_secs), sum(dispatch_n), sum(dispatch_secs), sum(sign_n), sum(sign_secs),
                sum(handle_n), sum(handle_secs), sum(verify_n), sum(verify_secs)
           FROM %s GROUP BY region_code, day, category, status, assignee, overdue
          ORDER BY region_code, day, category, status, assignee, overdue
         ON CONFLICT (region_code, day, category, status, assignee, overdue) DO UPDATE SET
             cases = s.cases + excluded.cases, closed_on_time = s.closed_on_time + excluded.closed_on_time,
             register_n = s.register_n + excluded.register_n, register_secs = s.register_secs + excluded.register_secs,
             dispatch_n = s.dispatch_n + excluded.dispatch_n, dispatch_secs = s.dispatch_secs + excluded.dispatch_secs,
             sign_n = s.sign_n + excluded.sign_n, sign_secs = s.sign_secs + excluded.sign_secs,
             handle_n = s.handle_n + excluded.handle_n, handle_secs = s.handle_secs + excluded.handle_secs,
             verify_n = s.verify_n + excluded.verify_n, verify_secs = s.verify_secs + excluded.verify_secs',
        target, src);
    -- Keys whose vector came back to zero are removed (only the keys just touched are looked at).
    EXECUTE format(
        'DELETE FROM %s s USING (SELECT DISTINCT region_code, day, category, status, assignee, overdue FROM %s) k
          WHERE s.region_code = k.region_code AND s.day = k.day AND s.category = k.category AND s.status = k.status
            AND s.assignee = k.assignee AND s.overdue = k.overdue
            AND s.cases = 0 AND s.closed_on_time = 0 AND s.register_n = 0 AND s.dispatch_n = 0 AND s.sign_n = 0
            AND s.handle_n = 0 AND s.verify_n = 0',
        target, src);
END $$;

-- Folds the pending deltas into `case_stats` and the rollups; one folder at a time (advisory
-- lock), so two server replicas never fold the same rows twice. Returns the deltas folded.
CREATE FUNCTION case_stats_fold() RETURNS bigint LANGUAGE plpgsql SET client_min_messages = warning AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7270004) THEN
        RETURN 0;
    END IF;
    DROP TABLE IF EXISTS folding;
    CREATE TEMP TABLE folding ON COMMIT DROP AS
        WITH moved AS (DELETE FROM case_stats_delta RETURNING *)
        SELECT region_code, day, category, status, assignee, overdue, cases, closed_on_time, register_n,
               register_secs, dispatch_n, dispatch_secs, sign_n, sign_secs, handle_n, handle_secs, verify_n,
               verify_secs
          FROM moved;
    SELECT count(*) INTO folded FROM folding;
    IF folded = 0 THEN
        RETURN 0;
    END IF;
    PERFORM case_stats_add('case_stats', 'folding');
    DROP TABLE IF EXISTS folding_month;
    CREATE TEMP TABLE folding_month ON COMMIT DROP AS
        SELECT left(region_code, 9) AS region_code, date_trunc('month', day)::date AS day, category, status,
               assignee, overdue, cases, closed_on_time, register_n, register_secs, dispatch_n, dispatch_secs,
               sign_n, sign_secs, handle_n, handle_secs, verify_n, verify_secs
          FROM folding;
    PERFORM case_stats_add('case_stats_town_month', 'folding_month');
    INSERT INTO case_grid_month AS g (region_code, day, cases)
    SELECT region_code, date_trunc('month', day)::date, sum(cases)
      FROM folding WHERE status <> 'MERGED'
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (region_code, day) DO UPDATE SET cases = g.cases + excluded.cases;
    DELETE FROM case_grid_month g USING (SELECT DISTINCT region_code, date_trunc('month', day)::date AS day FROM folding) k
     WHERE g.region_code = k.region_code AND g.day = k.day AND g.cases = 0;
    RETURN folded;
END $$;

-- Early warnings. `dedup_key` makes detection idempotent: running the detector twice, or on
-- two replicas, raises one alert.
CREATE TABLE alerts (
    alert_id uuid PRIMARY KEY,
    kind text NOT NULL,
    region_code text NOT NULL,
    category text NOT NULL DEFAULT '',
    case_id uuid,
    subject text NOT NULL DEFAULT '',
    detail jsonb NOT NULL DEFAULT '{}',
    dedup_key text NOT NULL UNIQUE,
    raised_at timestamptz NOT NULL
);
CREATE INDEX alerts_region_idx ON alerts (region_code text_pattern_ops, alert_id);

-- How far each background detector has looked (so it scans only what is new).
CREATE TABLE detector_marks (
    name text PRIMARY KEY,
    mark timestamptz NOT NULL
);

-- The live feed reads audit events of cases, reports and alerts by sequence; this index keeps
-- a scoped catch-up from scanning unrelated events.
CREATE INDEX audit_events_feed_idx ON audit_events (region_code text_pattern_ops, seq)
    WHERE entity_type IN ('case', 'report', 'alert');

-- Wakes the live feed of every server replica: one small notification per transaction that
-- appends audit events (identical notifications within a transaction collapse into one).
-- Listeners then read the events themselves from the table, by sequence.
CREATE FUNCTION notify_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridhub_feed', '');
    RETURN NULL;
END $$;
CREATE TRIGGER audit_events_notify AFTER INSERT ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_feed();

-- Mediation statistics by breakdown. GetMediationStats answers with figures by dispute type, by
-- team and by kind (the total is the sum over the kinds, every case having one kind), so the
-- aggregate keeps one row per (grain, period, region, breakdown, key) with the figures already
-- summed, instead of one row per combination of every dimension (migration 6), and keeps it at
-- two grains: local (UTC+8) days and local months. A range reads whole months from the monthly
-- rows, the days of its partial months from the daily rows and only the cases of its partial
-- days one by one (`store::mediation::stats`).
DROP TRIGGER mediation_cases_stats_ins_del ON mediation_cases;
DROP TRIGGER mediation_cases_stats_upd ON mediation_cases;
DROP FUNCTION mediation_stats_apply();
DROP FUNCTION mediation_stats_add(mediation_cases, integer);
DROP TABLE mediation_stats;

CREATE TABLE mediation_figures (
    grain text NOT NULL CHECK (grain IN ('day', 'month')),
    -- The local day, or the first day of the local month, the cases were registered in.
    period date NOT NULL,
    region_code text COLLATE "C" NOT NULL,
    -- 1: dispute type, 2: team, 3: kind.
    dim smallint NOT NULL CHECK (dim BETWEEN 1 AND 3),
    key text NOT NULL,
    cases bigint NOT NULL,
    succeeded bigint NOT NULL,
    failed bigint NOT NULL,
    -- Cases with an outcome, and the seconds from registration to outcome summed over them.
    decided bigint NOT NULL,
    secs double precision NOT NULL,
    -- Succeeded cases whose agreement has a performance deadline, and those found performed.
    with_deadline bigint NOT NULL,
    performed_on_time bigint NOT NULL,
    PRIMARY KEY (grain, period, region_code, dim, key)
);

-- The figures' change for the cases in `plus` (counted) and `minus` (no longer counted), at
-- both grains, summed per row and applied in key order (concurrent writers take row locks in
-- the same order). Rows whose change nets out are left alone.
CREATE FUNCTION mediation_figures_add(plus mediation_cases[], minus mediation_cases[]) RETURNS void
LANGUAGE sql AS $$
    WITH c AS (
        SELECT r.*, 1 AS sign FROM unnest(plus) r
        UNION ALL
        SELECT r.*, -1 FROM unnest(minus) r
    ), d AS (
        SELECT g.grain, g.period, c.region_code, x.dim, x.key,
               c.sign AS cases,
               c.sign * (c.outcome = 'SUCCEEDED')::int AS succeeded,
               c.sign * (c.outcome = 'FAILED')::int AS failed,
               c.sign * (c.outcome <> '')::int AS decided,
               c.sign * COALESCE(EXTRACT(EPOCH FROM (c.outcome_at - c.registered_at)), 0)::float8 AS secs,
               c.sign * (c.outcome = 'SUCCEEDED' AND c.agreement_deadline IS NOT NULL)::int AS with_deadline,
               c.sign * (c.outcome = 'SUCCEEDED' AND c.agreement_deadline IS NOT NULL
                         AND COALESCE(c.performed, false))::int AS performed_on_time
          FROM c
         CROSS JOIN LATERAL (VALUES ((c.registered_at AT TIME ZONE 'UTC' + interval '8 hours')::date)) l(day)
         CROSS JOIN LATERAL (VALUES ('day', l.day), ('month', date_trunc('month', l.day)::date)) g(grain, period)
         CROSS JOIN LATERAL (VALUES (1::smallint, c.dispute_type), (2::smallint, c.team), (3::smallint, c.kind)) x(dim, key)
    )
    INSERT INTO mediation_figures AS f
    SELECT grain, period, region_code, dim, key, sum(cases), sum(succeeded), sum(failed),
           sum(decided), sum(secs), sum(with_deadline), sum(performed_on_time)
      FROM d
     GROUP BY grain, period, region_code, dim, key
    HAVING sum(cases) <> 0 OR sum(succeeded) <> 0 OR sum(failed) <> 0 OR sum(decided) <> 0
        OR sum(secs) <> 0 OR sum(with_deadline) <> 0 OR sum(performed_on_time) <> 0
     ORDER BY grain, period, region_code, dim, key
    ON CONFLICT (grain, period, region_code, dim, key) DO UPDATE
       SET cases = f.cases + EXCLUDED.cases,
           succeeded = f.succeeded + EXCLUDED.succeeded,
           failed = f.failed + EXCLUDED.failed,
           decided = f.decided + EXCLUDED.decided,
           secs = f.secs + EXCLUDED.secs,
           with_deadline = f.with_deadline + EXCLUDED.with_deadline,
           performed_on_time = f.performed_on_time + EXCLUDED.performed_on_time
$$;

-- Statement-level triggers: a bulk insert of cases updates each figure row once.
CREATE FUNCTION mediation_figures_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM mediation_figures_add(ARRAY(SELECT n::mediation_cases FROM new_rows n), '{}'::mediation_cases[]);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM mediation_figures_add('{}'::mediation_cases[], ARRAY(SELECT o::mediation_cases FROM old_rows o));
    ELSE
        PERFORM mediation_figures_add(ARRAY(SELECT n::mediation_cases FROM new_rows n), ARRAY(SELECT o::mediation_cases FROM old_rows o));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mediation_cases_figures_ins AFTER INSERT ON mediation_cases
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mediation_figures_apply();
CREATE TRIGGER mediation_cases_figures_upd AFTER UPDATE ON mediation_cases
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mediation_figures_apply();
CREATE TRIGGER mediation_cases_figures_del AFTER DELETE ON mediation_cases
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mediation_figures_apply();

SELECT mediation_figures_add(ARRAY(SELECT m FROM mediation_cases m), '{}'::mediation_cases[]);

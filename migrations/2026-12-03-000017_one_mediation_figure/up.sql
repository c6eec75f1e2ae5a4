-- What one mediation case contributes to the figures, defined once: the triggers that keep
-- mediation_figures (migration 7) and GetMediationStats' cases of partial days
-- (store::mediation::stats) both read it. A plain SQL function, inlined by the planner.
CREATE FUNCTION mediation_case_figures(c mediation_cases)
RETURNS TABLE (dim smallint, key text, cases int, succeeded int, failed int, decided int,
               secs float8, with_deadline int, performed_on_time int)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT x.dim, x.key, 1,
           (c.outcome = 'SUCCEEDED')::int,
           (c.outcome = 'FAILED')::int,
           (c.outcome <> '')::int,
           COALESCE(EXTRACT(EPOCH FROM (c.outcome_at - c.registered_at)), 0)::float8,
           (c.outcome = 'SUCCEEDED' AND c.agreement_deadline IS NOT NULL)::int,
           (c.outcome = 'SUCCEEDED' AND c.agreement_deadline IS NOT NULL AND COALESCE(c.performed, false))::int
      FROM (VALUES (1::smallint, c.dispute_type), (2::smallint, c.team), (3::smallint, c.kind)) x(dim, key)
$$;

CREATE OR REPLACE FUNCTION mediation_figures_add(plus mediation_cases[], minus mediation_cases[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH c AS (
        SELECT r AS row, 1 AS sign FROM unnest(plus) r
        UNION ALL
        SELECT r, -1 FROM unnest(minus) r
    ), d AS (
        SELECT g.grain, g.period, (c.row).region_code, x.dim, x.key,
               c.sign * x.cases AS cases,
               c.sign * x.succeeded AS succeeded,
               c.sign * x.failed AS failed,
               c.sign * x.decided AS decided,
               c.sign * x.secs AS secs,
               c.sign * x.with_deadline AS with_deadline,
               c.sign * x.performed_on_time AS performed_on_time
          FROM c
         CROSS JOIN LATERAL (VALUES (((c.row).registered_at AT TIME ZONE 'UTC' + interval '8 hours')::date)) l(day)
         CROSS JOIN LATERAL (VALUES ('day', l.day), ('month', date_trunc('month', l.day)::date)) g(grain, period)
         CROSS JOIN LATERAL mediation_case_figures(c.row) x
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
           performed_on_time = f.performed_on_time + EXCLUDED.performed_on_time;
END$$;

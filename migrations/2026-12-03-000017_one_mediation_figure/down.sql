-- Back to migration 7's (and 10's) own definition of a case's figures.
CREATE OR REPLACE FUNCTION public.mediation_figures_add(plus mediation_cases[], minus mediation_cases[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$BEGIN

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
           performed_on_time = f.performed_on_time + EXCLUDED.performed_on_time;
END$function$
;

DROP FUNCTION mediation_case_figures(mediation_cases);

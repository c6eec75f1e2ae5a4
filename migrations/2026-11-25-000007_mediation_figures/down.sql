DROP TRIGGER mediation_cases_figures_ins ON mediation_cases;
DROP TRIGGER mediation_cases_figures_upd ON mediation_cases;
DROP TRIGGER mediation_cases_figures_del ON mediation_cases;
DROP FUNCTION mediation_figures_apply();
DROP FUNCTION mediation_figures_add(mediation_cases[], mediation_cases[]);
DROP TABLE mediation_figures;

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
INSERT INTO mediation_stats
SELECT region_code, date_trunc('month', registered_at AT TIME ZONE 'UTC' + interval '8 hours')::date,
       dispute_type, team, kind, outcome, agreement_deadline IS NOT NULL, COALESCE(performed, false),
       count(*), sum(COALESCE(EXTRACT(EPOCH FROM (outcome_at - registered_at)), 0))
  FROM mediation_cases GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

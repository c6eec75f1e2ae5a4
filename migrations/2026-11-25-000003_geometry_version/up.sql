-- A counter bumped by every statement that changes region geometry, so servers holding the
-- grid polygons in memory (report intake) know when to reload them.
CREATE TABLE geometry_version (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL
);
INSERT INTO geometry_version (id, version) VALUES (true, 1);

CREATE FUNCTION bump_geometry_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE geometry_version SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER regions_geometry_changed
    AFTER INSERT OR DELETE OR UPDATE OF boundary, code, level ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_geometry_version();

-- Takes the audit chain's lock, then reads the chain head. In a VOLATILE function every
-- statement takes a fresh snapshot, so the read sees what the previous lock holder committed:
-- one round trip instead of two inside the section that serializes all writers.
CREATE FUNCTION audit_chain_head() RETURNS TABLE (head_seq bigint, head_hash bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7270002);
    RETURN QUERY SELECT a.seq, a.hash FROM audit_events a ORDER BY a.seq DESC LIMIT 1;
END
$$;

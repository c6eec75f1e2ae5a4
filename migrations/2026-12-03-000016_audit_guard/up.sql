-- 全程留痕 against the database's own users.
--
-- 1. TRUNCATE is refused like UPDATE and DELETE (a row trigger does not see it).
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- 2. The server runs as a role of its own, not the owner: it may read and append the chain
-- and nothing else of it (no UPDATE, DELETE, TRUNCATE; not being the owner it cannot
-- disable the triggers either). Everything else it reads and writes as before. It owns the
-- pending queue (rows not yet sealed), which its sealer vacuums every second. Run by the
-- owner after every migration (`store::migrate` with the server's role), so new tables are
-- granted too; idempotent.
CREATE FUNCTION gridhub_grant_server(role_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', role_name);
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO %I', role_name);
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON audit_events FROM %I', role_name);
    EXECUTE format('ALTER TABLE audit_pending OWNER TO %I', role_name);
END
$$;

DROP FUNCTION gridhub_grant_server(text);
DROP TRIGGER audit_events_no_truncate ON audit_events;

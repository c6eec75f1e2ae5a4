DROP TRIGGER audit_events_notify ON audit_events;
DROP FUNCTION notify_feed();
DROP INDEX audit_events_feed_idx;
DROP TABLE detector_marks;
DROP TABLE alerts;
DROP TRIGGER cases_stats_insert ON cases;
DROP TRIGGER cases_stats_update ON cases;
DROP TRIGGER cases_stats_delete ON cases;
DROP FUNCTION case_stats_fold();
DROP FUNCTION case_stats_add(regclass, text);
DROP TABLE case_grid_month;
DROP TABLE case_stats_town_month;
DROP FUNCTION cases_stats_inserted();
DROP FUNCTION cases_stats_updated();
DROP FUNCTION cases_stats_deleted();
DROP FUNCTION case_stats_apply(cases[], cases[]);
DROP TABLE case_stats_delta;
DROP TABLE case_stats;
DROP INDEX reports_grid_category_idx;
DROP INDEX reports_phone_idx;
ALTER TABLE reports DROP COLUMN reporter_phone_enc, DROP COLUMN reporter_phone_index;
DROP INDEX cases_assignee_idx;
DROP INDEX cases_deadline_idx;
DROP INDEX cases_sign_deadline_idx;
DROP INDEX cases_urge_idx;
DROP INDEX cases_escalate_idx;
ALTER TABLE cases DROP COLUMN assignee, DROP COLUMN registered_at, DROP COLUMN dispatched_at,
    DROP COLUMN signed_at, DROP COLUMN handled_at, DROP COLUMN closed_at, DROP COLUMN sign_deadline,
    DROP COLUMN deadline, DROP COLUMN urge_at, DROP COLUMN escalate_at, DROP COLUMN extension_days,
    DROP COLUMN urge_count;
ALTER TABLE categories DROP COLUMN sign_limit_hours, DROP COLUMN handle_limit_days;
DROP TABLE calendar_days;

-- Every reply a request gets counts in the figures of the unit that made it, on time or not
-- against the deadline in force then: a reply reopened by 不满意 stays counted (reopening
-- clears `replied_at`, so the figures could not see it). Written with the request's workflow
-- state (store::service::save_flow) whenever a new reply is made.
CREATE TABLE service_request_replies (
    id bigserial PRIMARY KEY,
    sr_id uuid NOT NULL REFERENCES service_requests (sr_id),
    replied_at timestamptz NOT NULL,
    unit text NOT NULL,
    on_time boolean NOT NULL
);
CREATE INDEX service_request_replies_sr_idx ON service_request_replies (sr_id);
-- The replies standing now. (Earlier replies that a 不满意 reopened were not kept: their
-- times are unknown, and they stay uncounted.)
INSERT INTO service_request_replies (sr_id, replied_at, unit, on_time)
SELECT sr_id, replied_at, assignee, deadline IS NULL OR replied_at <= deadline
  FROM service_requests
 WHERE replied_at IS NOT NULL;

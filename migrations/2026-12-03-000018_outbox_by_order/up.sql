-- A request's 12345 updates, delivered or not, for its page (GetServiceRequest): by order.
CREATE INDEX hotline_outbox_order_all_idx ON hotline_outbox (order_no, seq);

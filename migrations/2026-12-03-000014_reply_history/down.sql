DROP TABLE service_request_replies;

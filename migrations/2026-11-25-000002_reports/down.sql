DROP TABLE reports;
DROP TABLE attachments;
DROP TABLE cases;
DROP SEQUENCE case_serial;
DROP TABLE category_mappings;
DROP TABLE categories;

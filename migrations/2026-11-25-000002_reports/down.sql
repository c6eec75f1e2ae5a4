DROP TABLE reports;
DROP TABLE attachments;
DROP TABLE cases;
DROP TABLE case_numbers;
DROP TABLE category_mappings;
DROP TABLE categories;

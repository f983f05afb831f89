ALTER TABLE messages DROP COLUMN detail;
ALTER TABLE messages DROP COLUMN file_name;
ALTER TABLE messages DROP COLUMN kind;
DROP TABLE lid_phones;

-- A user whose password someone else set (first-start admin, owner reset) must choose their own
-- before the API does anything else for them.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;

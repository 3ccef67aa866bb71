-- +goose Up
-- Search that stays fast (issue 20): a q of 3 characters or more is a substring search whose
-- candidates come from an FTS5 trigram index over name, email and MRN (the store still applies
-- the LIKE of before to them, so answers are the same); a shorter q is a prefix search served
-- by b-trees on lower(name), lower(email) (00001) and mrn (its unique index). The FTS table
-- holds every row, deleted ones too (searches filter on patients.deleted_at), kept in step by
-- triggers.
CREATE VIRTUAL TABLE patients_search USING fts5(name, email, mrn, content='patients', content_rowid='seq', tokenize='trigram');
INSERT INTO patients_search(patients_search) VALUES ('rebuild');
CREATE INDEX patients_name_lower ON patients (lower(name)) WHERE deleted_at IS NULL;
-- +goose StatementBegin
CREATE TRIGGER patients_search_insert AFTER INSERT ON patients BEGIN
    INSERT INTO patients_search (rowid, name, email, mrn) VALUES (new.seq, new.name, new.email, new.mrn);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER patients_search_update AFTER UPDATE OF name, email, mrn ON patients BEGIN
    INSERT INTO patients_search (patients_search, rowid, name, email, mrn) VALUES ('delete', old.seq, old.name, old.email, old.mrn);
    INSERT INTO patients_search (rowid, name, email, mrn) VALUES (new.seq, new.name, new.email, new.mrn);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER patients_search_delete AFTER DELETE ON patients BEGIN
    INSERT INTO patients_search (patients_search, rowid, name, email, mrn) VALUES ('delete', old.seq, old.name, old.email, old.mrn);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER patients_search_delete;
DROP TRIGGER patients_search_update;
DROP TRIGGER patients_search_insert;
DROP INDEX patients_name_lower;
DROP TABLE patients_search;

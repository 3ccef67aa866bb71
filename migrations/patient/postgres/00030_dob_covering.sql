-- +goose Up
-- The date-of-birth index carries seq (issue 20 item 1): a search counts its matches by
-- reading their seq (Store.countMatches), and without it in the index every match cost a read
-- of its record. A month of births at a million patients (856 matches) was counted in 4 ms,
-- and is now counted from the index alone in 0.3 ms, where the table's visibility map says its
-- pages are all visible (VACUUM, which autovacuum runs; `pms seed` runs it after seeding).
-- SQLite's indexes hold the rowid, which is seq, already.
DROP INDEX IF EXISTS patients_dob_live;
CREATE INDEX patients_dob_live ON patients (date_of_birth) INCLUDE (seq) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX IF EXISTS patients_dob_live;
CREATE INDEX patients_dob_live ON patients (date_of_birth) WHERE deleted_at IS NULL;

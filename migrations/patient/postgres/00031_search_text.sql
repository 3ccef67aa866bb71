-- +goose Up
-- The text a search's q is matched against in a walk in registration order (issue 20 item 1),
-- kept with the record: its name and email lowercased and its MRN, each after a \x01. A
-- search with many matches at a million patients walks about 2,000 records for its page, and
-- testing lower(name), lower(email) and mrn on each was two thirds of that walk (1.5 against
-- 0.6 ms for one LIKE on this column, pgbench). The separator keeps a substring within one
-- field (a q holding it is never matched here: Store.walkCondition) and marks where each
-- field starts, for the prefix of a short q. The trigram indexes stay on the fields
-- themselves: counting uses them. Adding a stored column rewrites the table and its indexes
-- once (44 s at a million patients here).
ALTER TABLE patients ADD COLUMN search_text TEXT GENERATED ALWAYS AS
    (E'\x01' || lower(name) || E'\x01' || lower(email) || E'\x01' || coalesce(mrn, '')) STORED;
-- Whether a q is walked at all is judged from these columns' statistics (searchStats): with
-- 101 histogram bounds, five ANALYZEs of a million patients put q=ovela (28,700 matches) at
-- 9,900 to 29,700; below 15,300 its page needs a walk longer than DenseWalkRows, so it is
-- counted through its trigram index (a bench run after such an ANALYZE served it at 66
-- instead of 650 searches a second). With 1,001 bounds they put it at 29,000 to 32,000. ANALYZE takes
-- no longer: it samples 300,000 rows already for date_of_birth's 1,000 (migration 00029).
ALTER TABLE patients ALTER COLUMN name SET STATISTICS 1000;
ALTER TABLE patients ALTER COLUMN email SET STATISTICS 1000;
ALTER TABLE patients ALTER COLUMN mrn SET STATISTICS 1000;

-- +goose Down
ALTER TABLE patients ALTER COLUMN name SET STATISTICS -1;
ALTER TABLE patients ALTER COLUMN email SET STATISTICS -1;
ALTER TABLE patients ALTER COLUMN mrn SET STATISTICS -1;
ALTER TABLE patients DROP COLUMN search_text;

-- +goose Up
-- Issue 17's search budget: a record's identifiers (issue 19) also kept on its row, as the
-- JSON array patient_versions already keeps, sorted by system and value, so a read or a
-- 500-record search page needs no second query into patient_identifiers (which stays the
-- source of uniqueness and of the identifier search). Existing records are filled in.
ALTER TABLE patients ADD COLUMN identifiers TEXT NOT NULL DEFAULT '[]';
UPDATE patients p SET identifiers = i.ids
FROM (SELECT patient_id, json_agg(json_build_object('system', system, 'value', value) ORDER BY system, value)::text AS ids
      FROM patient_identifiers GROUP BY patient_id) i
WHERE p.id = i.patient_id;

-- +goose Down
ALTER TABLE patients DROP COLUMN identifiers;

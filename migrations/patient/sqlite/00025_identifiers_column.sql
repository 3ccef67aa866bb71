-- +goose Up
-- Issue 17's search budget: as the PostgreSQL migration of the same number.
ALTER TABLE patients ADD COLUMN identifiers TEXT NOT NULL DEFAULT '[]';
UPDATE patients SET identifiers = (
    SELECT json_group_array(json_object('system', system, 'value', value))
    FROM (SELECT system, value FROM patient_identifiers
          WHERE patient_id = patients.id ORDER BY system, value))
WHERE id IN (SELECT patient_id FROM patient_identifiers);

-- +goose Down
ALTER TABLE patients DROP COLUMN identifiers;

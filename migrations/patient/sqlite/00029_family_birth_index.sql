-- +goose Up
-- As the PostgreSQL migration of the same number: family and date of birth in one index,
-- whose leading column serves the family's byte range alone (it replaces
-- patients_family_lower of migration 00027).
CREATE INDEX IF NOT EXISTS patients_family_birth ON patients (lower(family), date_of_birth) WHERE deleted_at IS NULL;
DROP INDEX IF EXISTS patients_family_lower;

-- +goose Down
CREATE INDEX IF NOT EXISTS patients_family_lower ON patients (lower(family)) WHERE deleted_at IS NULL;
DROP INDEX IF EXISTS patients_family_birth;

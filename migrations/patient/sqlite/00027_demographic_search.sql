-- +goose Up
-- Search by the demographics of issue 19, as the PostgreSQL migration of the same number:
-- family as a prefix is served by a b-tree on lower(family) (the store compares a byte range,
-- which SQLite can serve from an index on the expression, beside the LIKE), phone exactly by
-- an index on its digits. A given-name prefix has no index here: it is a LIKE over the live
-- patients (docs/api.md).
CREATE INDEX patients_family_lower ON patients (lower(family)) WHERE deleted_at IS NULL;
CREATE INDEX patients_phone_key ON patients ((replace(replace(replace(replace(replace(phone, ' ', ''), '-', ''), '.', ''), '(', ''), ')', ''))) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX patients_phone_key;
DROP INDEX patients_family_lower;

-- +goose Up
-- Break-glass (issue 17): a patient may be marked restricted; reading a restricted record
-- needs an emergency grant, kept here for review (the reason is staff text, never logged).
-- Instants are fixed-width UTC text (see pkg/platform/db.Time), so they compare as text.
ALTER TABLE patients ADD COLUMN confidentiality TEXT NOT NULL DEFAULT 'normal'
    CHECK (confidentiality IN ('normal', 'restricted'));
-- Each version records the level the record had, as it records its other fields.
ALTER TABLE patient_versions ADD COLUMN confidentiality TEXT NOT NULL DEFAULT 'normal';

CREATE TABLE break_glass_grants (
    id          TEXT PRIMARY KEY,
    patient_id  TEXT NOT NULL REFERENCES patients (id),
    user_id     TEXT NOT NULL,
    role        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX break_glass_grants_access ON break_glass_grants (patient_id, user_id, expires_at);
CREATE INDEX break_glass_grants_created ON break_glass_grants (created_at);

-- +goose Down
DROP TABLE break_glass_grants;
ALTER TABLE patient_versions DROP COLUMN confidentiality;
ALTER TABLE patients DROP COLUMN confidentiality;

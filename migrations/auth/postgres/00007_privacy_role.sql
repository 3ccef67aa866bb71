-- +goose Up
-- Issue 17: the privacy role (read-only access to audit logs and patients' access logs,
-- nothing clinical; pkg/platform/authz.RolePrivacy).
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'clinician', 'billing', 'analyst', 'privacy'));

-- +goose Down
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'clinician', 'billing', 'analyst'));

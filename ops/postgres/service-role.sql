-- The least-privilege role a service runs as (docs/audit.md, "Database role"), run as the
-- owner of the service's schema after `pms migrate`, in the service's database:
--
--   psql -v schema=patient -v role=pms_patient_app -f ops/postgres/service-role.sql pms_patient
--
-- then give the role a password (\password pms_patient_app) and point the service's
-- --database-url at it; migrations keep running as the owner. The role may read and write the
-- service's own tables, but of the audit tables only what the audit writer needs: SELECT and
-- INSERT on audit_log (never UPDATE, DELETE or TRUNCATE, which the insert-only triggers refuse
-- anyway, and never ALTER TABLE ... DISABLE TRIGGER, which needs ownership), and SELECT, INSERT
-- and DELETE on audit_pending (the writer deletes an entry in the transaction that chains it).
-- Re-run it after a migration that adds tables. Idempotent.
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', :'schema', :'role') \gexec
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', :'schema', :'role') \gexec
SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', :'schema', :'role') \gexec
SELECT format('REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %I.audit_log FROM %I', :'schema', :'role') \gexec
SELECT format('GRANT SELECT, INSERT ON %I.audit_log TO %I', :'schema', :'role') \gexec
SELECT format('REVOKE UPDATE, TRUNCATE, REFERENCES, TRIGGER ON %I.audit_pending FROM %I', :'schema', :'role') \gexec
SELECT format('GRANT SELECT, INSERT, DELETE ON %I.audit_pending TO %I', :'schema', :'role') \gexec

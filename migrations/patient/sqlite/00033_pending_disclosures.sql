-- +goose Up
-- Issue 20: a change's entry carries its own disclosure as a read's does (00032). The change's
-- transaction records the entry in audit_pending (issue 17) with how the request arrived and
-- whether it used a break-glass grant, and whichever audit writer moves it into the chain, in
-- this process or another after a crash or a restart, copies both into the entry's
-- audit_log row. Until now they lived only in the memory of the process that served the
-- change, so an entry chained by another process read transport "unknown", without its
-- emergency mark. Nullable, no default: adding them rewrites nothing, and a row without them
-- (recorded before this migration, or by a process from before it) is chained as before.
ALTER TABLE audit_pending ADD COLUMN disclosed_via TEXT;
ALTER TABLE audit_pending ADD COLUMN disclosed_emergency BOOLEAN;

-- +goose Down
ALTER TABLE audit_pending DROP COLUMN disclosed_emergency;
ALTER TABLE audit_pending DROP COLUMN disclosed_via;

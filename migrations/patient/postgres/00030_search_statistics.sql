-- +goose Up
-- Statistics of the lowered name, email, family and given names (issue 20 item 1). A search
-- matches them as lower(x) LIKE …, and PostgreSQL keeps statistics of such an expression only
-- through a non-partial expression index; every index on them is partial (live records), so
-- the planner guessed a pattern's matches from its length alone: every 3-letter substring at
-- 8% of the table, every 8-letter one at 1 row, "example" (every email) at 1 row. The patient
-- service asks it whether a search is dense enough to go uncounted (Store.densePage), which
-- needs the estimate to come from the data: with these, ANALYZE gives each expression its
-- most common values and histogram, as a column has. Without ANALYZE (a fresh database)
-- every search is counted, as before.
CREATE STATISTICS IF NOT EXISTS patients_lower_name ON (lower(name)) FROM patients;
CREATE STATISTICS IF NOT EXISTS patients_lower_email ON (lower(email)) FROM patients;
CREATE STATISTICS IF NOT EXISTS patients_lower_family ON (lower(family)) FROM patients;
CREATE STATISTICS IF NOT EXISTS patients_lower_given ON (lower(given)) FROM patients;

-- +goose Down
DROP STATISTICS IF EXISTS patients_lower_name;
DROP STATISTICS IF EXISTS patients_lower_email;
DROP STATISTICS IF EXISTS patients_lower_family;
DROP STATISTICS IF EXISTS patients_lower_given;

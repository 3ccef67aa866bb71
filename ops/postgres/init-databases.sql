-- One database per service, created on the PostgreSQL container's first start
-- (docker-entrypoint-initdb.d). Each service then migrates its own schema in its database.
CREATE DATABASE pms_auth;
CREATE DATABASE pms_patient;
CREATE DATABASE pms_billing;
CREATE DATABASE pms_analytics;
-- The gateway's audit log of the calls it refuses itself (issue 17).
CREATE DATABASE pms_gateway;

-- PostgreSQL role for honeydue-exporter: connect, and SELECT the two residence tables - nothing else.
-- tests/test_least_privilege.py runs this file (role and database renamed, a test password) and proves
-- the Postgres probes (SELECT 1 on the pooler and the direct endpoint, the residence cache's truth
-- query) work under it, inside READ ONLY transactions with a statement timeout, and that writes fail.
--
-- Run as the database owner (Neon: the project owner role) in database `honeydue`; replace CHANGE_ME.
-- Then set postgres.pooler.user / postgres.direct.user to honeydue_exporter and their password_file.
-- Behind a pooler (Neon's -pooler endpoint, PgBouncer) the role must also be known to the pooler.

CREATE ROLE honeydue_exporter LOGIN PASSWORD 'CHANGE_ME'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 4;

-- Belt and braces: every session starts read-only with a short statement timeout even if a future
-- probe forgot its own `BEGIN READ ONLY; SET LOCAL statement_timeout = ...` framing (the probes'
-- transaction-local settings win, and nothing is left set on a pooled server connection).
ALTER ROLE honeydue_exporter SET default_transaction_read_only = on;
ALTER ROLE honeydue_exporter SET statement_timeout = '10s';
ALTER ROLE honeydue_exporter SET idle_in_transaction_session_timeout = '10s';

GRANT CONNECT ON DATABASE honeydue TO honeydue_exporter;
GRANT USAGE ON SCHEMA public TO honeydue_exporter;
-- The residence cache probe's truth query: owners (residence_residence.owner_id, id) and members
-- (residence_residence_users.user_id, residence_id).
GRANT SELECT ON TABLE public.residence_residence, public.residence_residence_users TO honeydue_exporter;

-- Not granted: any other table, sequences, functions beyond PUBLIC's defaults, INSERT/UPDATE/DELETE.
-- PostgreSQL gives PUBLIC (so every role) CONNECT and TEMPORARY on databases; if your database still
-- has those defaults, the owner may tighten them for all roles with
--   REVOKE CONNECT, TEMPORARY ON DATABASE honeydue FROM PUBLIC;  (then GRANT CONNECT to the app's roles)

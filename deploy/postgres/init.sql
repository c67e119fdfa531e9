-- Databases of the docker-compose Postgres (mounted into /docker-entrypoint-initdb.d/).
-- The entrypoint runs this once, as the superuser `agentos` (POSTGRES_USER), on the first
-- start with an empty data volume. To run it again: `docker compose down -v` (deletes data).
--
--   gateway  users, API keys, agents, sessions, messages, runs (Alembic migrations on start)
--   runner   the agents' conversation memory (agno's tables, created by agent-runner)

CREATE DATABASE gateway OWNER agentos;
CREATE DATABASE runner OWNER agentos;

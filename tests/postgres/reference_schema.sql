-- Reference ARES PostgreSQL schema, written from shared/API.md §7 (7.1, 7.2, 7.3).
--
-- What this is: the database a reference (Postgres-backed) ARES server would have, so that a real
-- `pg_dump` of it can be fed to `ares import-postgres` and the output of `ares export-postgres` can be
-- loaded back into it. It is the SUPERSET variant recommended in API.md §7.2:
--   * §7.1 tables exactly as the HEAD migrations 000–006 create them;
--   * §7.2 "core" tables (users, sessions, conversations, messages, memory_facts, preferences,
--     user_agents) with the superset of columns and the production-branch [P] constraints
--     (FKs with ON DELETE CASCADE, UNIQUE token_hash, preferences PK on the triple);
--   * agent_config_versions ([P] only) so the importer meets a TIMESTAMPTZ column and a
--     gen_random_uuid() default;
--   * _sqlx_migrations (§7.3), which every migrated database carries.
-- Index names are not given by API.md except idx_tenants_name and idx_api_keys_key_prefix; the
-- others follow the same idx_<table>_<column> convention.
--
-- Load with: psql -v ON_ERROR_STOP=1 -f reference_schema.sql   (needs PostgreSQL >= 13 for
-- gen_random_uuid() without pgcrypto). Runs inside one transaction; not idempotent on purpose
-- (load into an empty database).

BEGIN;

-- ---------------------------------------------------------------------------------------------
-- §7.3 sqlx bookkeeping
-- ---------------------------------------------------------------------------------------------
CREATE TABLE _sqlx_migrations (
    version        BIGINT      PRIMARY KEY,
    description    TEXT        NOT NULL,
    installed_on   TIMESTAMPTZ NOT NULL DEFAULT now(),
    success        BOOLEAN     NOT NULL,
    checksum       BYTEA       NOT NULL,
    execution_time BIGINT      NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- §7.1 migration 000: tenants
-- ---------------------------------------------------------------------------------------------
CREATE TABLE tenants (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    tier       TEXT   NOT NULL DEFAULT 'free',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX idx_tenants_name ON tenants (name);

CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_hash   TEXT    NOT NULL,
    key_prefix TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL DEFAULT 'default',
    is_active  INTEGER NOT NULL DEFAULT 1,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT
);
CREATE INDEX idx_api_keys_tenant_id ON api_keys (tenant_id);
CREATE INDEX idx_api_keys_key_prefix ON api_keys (key_prefix);

-- ---------------------------------------------------------------------------------------------
-- §7.1 migration 001: usage events unified
-- ---------------------------------------------------------------------------------------------
CREATE TABLE usage_events (
    id               TEXT    PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    source           TEXT    NOT NULL DEFAULT 'http',
    request_count    BIGINT  NOT NULL DEFAULT 1,
    token_count      BIGINT  NOT NULL DEFAULT 0,
    operation        TEXT,
    tokens_used      BIGINT  NOT NULL DEFAULT 0,
    effective_tokens BIGINT  NOT NULL DEFAULT 0,
    success          BOOLEAN NOT NULL DEFAULT TRUE,
    duration_ms      BIGINT  NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL
);
CREATE INDEX idx_usage_events_tenant_id ON usage_events (tenant_id);
CREATE INDEX idx_usage_events_created_at ON usage_events (created_at);
CREATE INDEX idx_usage_events_source ON usage_events (source);

CREATE TABLE monthly_usage_cache (
    tenant_id     TEXT   NOT NULL,
    usage_month   BIGINT NOT NULL,
    request_count BIGINT NOT NULL DEFAULT 0,
    token_count   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, usage_month)
);

CREATE TABLE daily_rate_limits (
    tenant_id     TEXT   NOT NULL,
    usage_date    BIGINT NOT NULL,
    request_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, usage_date)
);

-- ---------------------------------------------------------------------------------------------
-- §7.1 migration 002: kasino (created, unused by any HEAD code; import verbatim)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE kasno_devices (
    id           TEXT   PRIMARY KEY,
    tenant_id    TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    device_token TEXT,
    status       TEXT   NOT NULL DEFAULT 'active',
    block_mode   TEXT   NOT NULL DEFAULT 'aggressive',
    last_seen    BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE kasno_events (
    id             TEXT   PRIMARY KEY,
    tenant_id      TEXT   NOT NULL,
    device_id      TEXT   NOT NULL,
    event_type     TEXT   NOT NULL,
    severity       TEXT   NOT NULL,
    source         TEXT   NOT NULL,
    domain         TEXT,
    app_package    TEXT,
    content        TEXT,
    gambling_score REAL,
    action_taken   TEXT,
    metadata       JSONB,
    created_at     BIGINT NOT NULL
);
CREATE INDEX idx_kasno_events_tenant_id ON kasno_events (tenant_id);
CREATE INDEX idx_kasno_events_device_id ON kasno_events (device_id);
CREATE INDEX idx_kasno_events_created_at ON kasno_events (created_at);
CREATE INDEX idx_kasno_events_severity ON kasno_events (severity);

CREATE TABLE kasno_risk_scores (
    id          TEXT   PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    device_id   TEXT   NOT NULL,
    score_date  TEXT   NOT NULL,
    risk_score  REAL   NOT NULL,
    factors     JSONB,
    trend       TEXT,
    summary     TEXT,
    computed_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX idx_kasno_risk_scores_device_date ON kasno_risk_scores (device_id, score_date);

CREATE TABLE kasno_rules (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    rule_type  TEXT    NOT NULL,
    pattern    TEXT    NOT NULL,
    action     TEXT    NOT NULL DEFAULT 'block',
    source     TEXT    NOT NULL DEFAULT 'admin',
    enabled    BOOLEAN NOT NULL DEFAULT true,
    hits       BIGINT  NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- §7.1 migration 003: tenant agents
-- ---------------------------------------------------------------------------------------------
CREATE TABLE agent_templates (
    id           TEXT   PRIMARY KEY,
    product_type TEXT   NOT NULL,
    agent_name   TEXT   NOT NULL,
    display_name TEXT   NOT NULL,
    description  TEXT,
    config       JSONB  NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (product_type, agent_name)
);
CREATE INDEX idx_agent_templates_product_type ON agent_templates (product_type);

CREATE TABLE tenant_agents (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    agent_name   TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    description  TEXT,
    config       JSONB   NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT true,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    UNIQUE (tenant_id, agent_name)
);
CREATE INDEX idx_tenant_agents_tenant_id ON tenant_agents (tenant_id);

-- ---------------------------------------------------------------------------------------------
-- §7.1 migration 004: agent runs
-- ---------------------------------------------------------------------------------------------
CREATE TABLE agent_runs (
    id            TEXT   PRIMARY KEY,
    tenant_id     TEXT   NOT NULL REFERENCES tenants (id),
    agent_name    TEXT   NOT NULL,
    user_id       TEXT,
    status        TEXT   NOT NULL DEFAULT 'completed',
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    duration_ms   BIGINT NOT NULL DEFAULT 0,
    error         TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX idx_agent_runs_tenant_agent ON agent_runs (tenant_id, agent_name);
CREATE INDEX idx_agent_runs_created_at ON agent_runs (created_at);

-- ---------------------------------------------------------------------------------------------
-- §7.1 migration 005: alerts
-- ---------------------------------------------------------------------------------------------
CREATE TABLE alerts (
    id          TEXT    PRIMARY KEY,
    severity    TEXT    NOT NULL DEFAULT 'info',
    source      TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    resolved    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT
);
CREATE INDEX idx_alerts_resolved ON alerts (resolved);
CREATE INDEX idx_alerts_severity ON alerts (severity);
CREATE INDEX idx_alerts_created_at ON alerts (created_at);

-- ---------------------------------------------------------------------------------------------
-- §7.1 migration 006: audit log
-- ---------------------------------------------------------------------------------------------
CREATE TABLE admin_audit_log (
    id            TEXT   PRIMARY KEY,
    action        TEXT   NOT NULL,
    resource_type TEXT   NOT NULL,
    resource_id   TEXT   NOT NULL,
    details       TEXT,
    admin_ip      TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX idx_admin_audit_log_created_at ON admin_audit_log (created_at);
CREATE INDEX idx_admin_audit_log_resource ON admin_audit_log (resource_type, resource_id);

-- ---------------------------------------------------------------------------------------------
-- §7.2 core tables no HEAD migration creates (superset; [P] 007_core_tables constraints)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    id         TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT   NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idx_sessions_token_hash ON sessions (token_hash);
CREATE INDEX idx_sessions_user_id ON sessions (user_id);

CREATE TABLE conversations (
    id         TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL,
    title      TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX idx_conversations_user_id ON conversations (user_id);

CREATE TABLE messages (
    id              TEXT   PRIMARY KEY,
    conversation_id TEXT   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT   NOT NULL,
    content         TEXT   NOT NULL,
    "timestamp"     BIGINT NOT NULL
);
CREATE INDEX idx_messages_conversation_id ON messages (conversation_id);

CREATE TABLE memory_facts (
    id         TEXT             PRIMARY KEY,
    user_id    TEXT             NOT NULL,
    category   TEXT             NOT NULL,
    fact_key   TEXT             NOT NULL,
    fact_value TEXT             NOT NULL,
    confidence DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    created_at BIGINT           NOT NULL,
    updated_at BIGINT           NOT NULL
);
CREATE INDEX idx_memory_facts_user_id ON memory_facts (user_id);

CREATE TABLE preferences (
    id         TEXT             NOT NULL,
    user_id    TEXT             NOT NULL,
    category   TEXT             NOT NULL,
    key        TEXT             NOT NULL,
    value      TEXT             NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    created_at BIGINT           NOT NULL,
    PRIMARY KEY (user_id, category, key)
);

CREATE TABLE user_agents (
    id                  TEXT    PRIMARY KEY,
    user_id             TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    display_name        TEXT,
    description         TEXT,
    model               TEXT    NOT NULL,
    system_prompt       TEXT,
    tools               TEXT    NOT NULL DEFAULT '[]',
    max_tool_iterations INTEGER NOT NULL DEFAULT 10,
    parallel_tools      BOOLEAN NOT NULL DEFAULT false,
    extra               TEXT    NOT NULL DEFAULT '{}',
    is_public           BOOLEAN NOT NULL DEFAULT false,
    usage_count         INTEGER NOT NULL DEFAULT 0,
    rating_sum          INTEGER NOT NULL DEFAULT 0,
    rating_count        INTEGER NOT NULL DEFAULT 0,
    source              TEXT    NOT NULL DEFAULT 'user',
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX idx_user_agents_public ON user_agents (is_public, usage_count DESC);

-- [P] only (migration 008): the one table whose timestamp is TIMESTAMPTZ, not BIGINT seconds.
CREATE TABLE agent_config_versions (
    id            TEXT        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    agent_id      TEXT        NOT NULL,
    version       TEXT        NOT NULL,
    config_json   JSONB       NOT NULL,
    is_active     BOOLEAN     NOT NULL DEFAULT true,
    change_source TEXT        NOT NULL DEFAULT 'startup',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (agent_id, version)
);

COMMIT;

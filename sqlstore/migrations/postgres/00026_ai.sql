-- +goose Up
-- The AI privacy gateway (issue 16): a tenant's OpenAI-compatible providers, their API keys
-- (sealed under the tenant's ai_keys keyset, at most two active), the models it allows, the
-- purposes that may use them, its limits, and the usage counted against those limits.
CREATE TABLE ai_providers (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name            TEXT NOT NULL,
    base_url        TEXT NOT NULL,
    auth_style      TEXT NOT NULL CHECK (auth_style IN ('bearer', 'api-key', 'none')),
    timeout_seconds INTEGER NOT NULL,
    max_retries     INTEGER NOT NULL,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

-- A key is deleted when it is retired: nothing needs its ciphertext afterwards.
CREATE TABLE ai_provider_keys (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    provider_id UUID NOT NULL,
    ciphertext  BYTEA NOT NULL,  -- vault ai_keys, AAD (ai_provider_keys, ciphertext, id)
    hint        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, provider_id) REFERENCES ai_providers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ai_provider_keys_provider ON ai_provider_keys (tenant_id, provider_id, created_at);

CREATE TABLE ai_models (
    tenant_id   UUID NOT NULL,
    name        TEXT NOT NULL,
    provider_id UUID NOT NULL,
    upstream    TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('chat', 'embedding')),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name),
    FOREIGN KEY (tenant_id, provider_id) REFERENCES ai_providers (tenant_id, id) ON DELETE RESTRICT
);

CREATE TABLE ai_purposes (
    tenant_id         UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    purpose           TEXT NOT NULL,
    models            TEXT NOT NULL,  -- JSON array of ai_models names
    max_output_tokens INTEGER NOT NULL DEFAULT 0,
    updated_at        TIMESTAMPTZ NOT NULL,
    updated_by        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, purpose)
);

CREATE TABLE ai_settings (
    tenant_id           UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE RESTRICT,
    requests_per_minute INTEGER NOT NULL DEFAULT 0,
    tokens_per_day      BIGINT NOT NULL DEFAULT 0,
    tokens_per_month    BIGINT NOT NULL DEFAULT 0,
    id_countries        TEXT NOT NULL DEFAULT '[]',  -- JSON array of ISO 3166-1 alpha-2 codes
    updated_at          TIMESTAMPTZ NOT NULL,
    updated_by          TEXT NOT NULL DEFAULT ''
);

-- Counters per tenant and window (a UTC minute, day or month), shared by every node.
CREATE TABLE ai_usage (
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    period       TEXT NOT NULL CHECK (period IN ('minute', 'day', 'month')),
    period_start TIMESTAMPTZ NOT NULL,
    requests     BIGINT NOT NULL DEFAULT 0,
    tokens       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, period, period_start)
);

ALTER TABLE ai_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_providers
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE ai_provider_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_provider_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_provider_keys
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE ai_models ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_models FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_models
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE ai_purposes ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_purposes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_purposes
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE ai_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_settings
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE ai_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_usage
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE ai_usage;
DROP TABLE ai_settings;
DROP TABLE ai_purposes;
DROP TABLE ai_models;
DROP TABLE ai_provider_keys;
DROP TABLE ai_providers;

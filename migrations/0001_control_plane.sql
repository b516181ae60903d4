-- The control plane's store. One schema for PostgreSQL and SQLite: the store reaches both through
-- sqlx's `Any` driver, so every column is TEXT or BIGINT (ids are UUID strings, times RFC 3339 UTC
-- strings with a fixed width so that they sort as text, JSON documents TEXT).

CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    arn TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    bootstrap_brokers TEXT,
    configuration_arn TEXT,
    tags TEXT NOT NULL,
    idempotency_key TEXT,
    idempotency_fingerprint TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- A cluster's row is removed once the reconciler has forgotten it, which frees its name.
CREATE UNIQUE INDEX clusters_name_unique ON clusters (name);
CREATE UNIQUE INDEX clusters_idempotency_key_unique ON clusters (idempotency_key);
CREATE UNIQUE INDEX clusters_arn_unique ON clusters (arn);
CREATE INDEX clusters_created_at ON clusters (created_at, id);
CREATE INDEX clusters_configuration_arn ON clusters (configuration_arn);

-- Operations outlive their cluster (history of a deleted cluster), hence no foreign key.
CREATE TABLE operations (
    id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    operation_type TEXT NOT NULL,
    state TEXT NOT NULL,
    steps TEXT NOT NULL,
    source_spec TEXT,
    target_spec TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT
);
CREATE INDEX operations_cluster ON operations (cluster_id, created_at);
CREATE INDEX operations_state ON operations (state);

CREATE TABLE nodes (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    broker_id BIGINT NOT NULL,
    endpoint TEXT,
    zone TEXT NOT NULL,
    version TEXT NOT NULL,
    volume TEXT NOT NULL,
    state TEXT NOT NULL,
    last_heartbeat TEXT,
    last_heartbeat_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (cluster_id, broker_id)
);

CREATE TABLE configurations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    arn TEXT NOT NULL,
    description TEXT NOT NULL,
    kafka_versions TEXT NOT NULL,
    latest_revision BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX configurations_name_unique ON configurations (name);
CREATE UNIQUE INDEX configurations_arn_unique ON configurations (arn);

CREATE TABLE configuration_revisions (
    configuration_id TEXT NOT NULL REFERENCES configurations (id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    description TEXT NOT NULL,
    server_properties TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (configuration_id, revision)
);

-- Bearer tokens, stored as SHA-256 hex digests only. `kind` is 'admin' (the public API) or
-- 'agent' (one broker node's internal API, bound to cluster_id and broker_id).
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    cluster_id TEXT,
    broker_id BIGINT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX api_tokens_hash_unique ON api_tokens (token_sha256);
CREATE INDEX api_tokens_node ON api_tokens (cluster_id, broker_id);

-- Which control-plane replica reconciles a cluster. expires_at_ms is milliseconds since the Unix
-- epoch by the holder's clock: replicas are assumed NTP-synchronised well within a lease's TTL.
CREATE TABLE leases (
    cluster_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

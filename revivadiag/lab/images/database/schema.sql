-- The lab's schema: the application's users and the seed's configuration_migrations table.
CREATE TABLE IF NOT EXISTS users (
    id SERIAL PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Track configuration changes and migrations (the seed design's table, verbatim)
CREATE TABLE IF NOT EXISTS configuration_migrations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    migration_name VARCHAR(255) NOT NULL,
    migration_type VARCHAR(50) NOT NULL, -- 'container_rename', 'proxy_config', 'environment_update'
    status VARCHAR(50) NOT NULL DEFAULT 'pending',
    started_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    completed_at TIMESTAMP WITH TIME ZONE,
    rollback_data JSONB,
    error_message TEXT,
    created_by VARCHAR(100) DEFAULT 'system'
);

-- Index for migration tracking
CREATE INDEX IF NOT EXISTS idx_config_migrations_status ON configuration_migrations(status);
CREATE INDEX IF NOT EXISTS idx_config_migrations_type ON configuration_migrations(migration_type);

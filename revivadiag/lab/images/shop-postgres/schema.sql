-- The shop's schema: catalogue items (written by the api) and jobs (queued by the api through
-- Redis, completed by the worker).
CREATE TABLE IF NOT EXISTS items (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS jobs (
    id UUID PRIMARY KEY,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    result TEXT,
    worker TEXT,
    queued_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
    done_at TIMESTAMP WITH TIME ZONE
);
CREATE INDEX IF NOT EXISTS idx_jobs_status ON jobs(status);

/**
 * Numbered schema migrations. The schema version lives in PRAGMA user_version;
 * PRAGMA application_id marks the file as a mailq database so that pointing
 * --db at some other SQLite file fails clearly instead of adding tables to it.
 * Append new migrations; never edit a released one.
 */

/** "MLQ1" as a 32-bit integer. */
export const APPLICATION_ID = 0x4d4c5131;

export const migrations: readonly string[] = [
  // 1: campaigns, imports, recipients, rejects, suppressions.
  `
  CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft'
      CHECK (status IN ('draft','sending','paused','finished','cancelled')),
    template_json TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    template_source TEXT NOT NULL,
    vars_json TEXT NOT NULL DEFAULT '{}',
    settings_json TEXT NOT NULL DEFAULT '{}'
  ) STRICT;

  CREATE TABLE import_runs (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running','complete','failed')),
    columns_json TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    imported INTEGER,
    duplicates INTEGER,
    rejected INTEGER,
    total INTEGER
  ) STRICT;
  CREATE INDEX import_runs_campaign ON import_runs(campaign_id, status);

  CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    import_run_id INTEGER NOT NULL REFERENCES import_runs(id),
    line INTEGER NOT NULL,
    address TEXT NOT NULL,
    address_key TEXT NOT NULL,
    domain TEXT NOT NULL,
    vars_json TEXT NOT NULL,
    -- One of MessageState (src/store/types.ts). No CHECK here on purpose: it
    -- doubled the cost of an import row (~3 us of 6 us measured); the store
    -- only ever writes states from that union.
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    attempt_id TEXT,
    last_category TEXT,
    last_code INTEGER,
    last_enhanced TEXT,
    last_reply TEXT,
    message_id TEXT,
    sent_at INTEGER,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER
  ) STRICT;
  -- Dedupe within a campaign; also the lookup for preview --to.
  CREATE UNIQUE INDEX messages_campaign_key ON messages(campaign_id, address_key);

  CREATE TABLE import_rejects (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    import_run_id INTEGER NOT NULL REFERENCES import_runs(id),
    source TEXT NOT NULL,
    line INTEGER NOT NULL,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    -- Re-running an import must not list the same bad line twice.
    UNIQUE (campaign_id, source, line)
  ) STRICT;

  CREATE TABLE suppressions (
    address_key TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  `,
  // 2: the send engine: leasing index, attempts log, failures, domain state, runs.
  `
  -- The leasing index (SEND_INDEXES below) is not created here: maintained
  -- row by row it made a 1,000,000-row import 2x slower, built in bulk at
  -- the first send it costs ~2 s once.

  CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    owner TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    finished_at INTEGER,
    outcome TEXT,
    settings_json TEXT NOT NULL
  ) STRICT;

  -- Append-only: one row per SMTP try, the raw material of trace and reports.
  CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    campaign_id INTEGER NOT NULL,
    attempt_id TEXT NOT NULL,
    run_owner TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    stage TEXT,
    code INTEGER,
    enhanced TEXT,
    category TEXT NOT NULL,
    rule TEXT,
    reply TEXT,
    body_written INTEGER NOT NULL DEFAULT 0,
    next_state TEXT NOT NULL,
    delay_ms INTEGER
  ) STRICT;
  CREATE INDEX attempts_message ON attempts(message_id);

  -- The dead-letter table: one row per failed recipient, reply kept verbatim.
  CREATE TABLE failures (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id),
    campaign_id INTEGER NOT NULL,
    category TEXT NOT NULL,
    reason TEXT NOT NULL,
    code INTEGER,
    enhanced TEXT,
    reply TEXT,
    attempts INTEGER NOT NULL,
    at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX failures_campaign ON failures(campaign_id);

  -- Throttle pauses and slow-downs that must survive a restart.
  CREATE TABLE domain_state (
    campaign_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    status_json TEXT NOT NULL,
    rate_factor REAL NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, key)
  ) STRICT;
  `,
  // 3: several send processes on one campaign: shared token buckets, run figures.
  `
  -- One token bucket per (campaign, throttle key), shared by every process
  -- sending the campaign (sqlite/coordination.ts takeTokens). refilled_at is
  -- epoch ms on the clock of whoever refilled it last (one host with SQLite).
  CREATE TABLE domain_buckets (
    campaign_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    tokens REAL NOT NULL,
    refilled_at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, key)
  ) STRICT, WITHOUT ROWID;

  -- What each run reports with its heartbeat, for mailq status and the dashboard.
  ALTER TABLE runs ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN sent_last_minute INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX runs_campaign ON runs(campaign_id, finished_at);
  `,
];

/**
 * Indexes only sending needs, created by the first `send` (IF NOT EXISTS).
 * One index serves leasing (due rows of one domain in one state) and counts
 * by state.
 */
export const SEND_INDEXES = `
  CREATE INDEX IF NOT EXISTS messages_due ON messages(campaign_id, state, domain, next_attempt_at);
`;

export const SCHEMA_VERSION = migrations.length;

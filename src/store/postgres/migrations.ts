/**
 * Numbered schema migrations for PostgreSQL. The version and a marker saying
 * "this schema is mailq's" live in the `mailq_meta` table, so that pointing
 * --db at some other database fails clearly instead of adding tables to it.
 * Append new migrations; never edit a released one.
 *
 * Same tables and columns as SQLite (src/store/sqlite/migrations.ts), so the
 * engine sees the same values: ids are BIGINT (bigserial) and timestamps
 * BIGINT epoch milliseconds, both read back as JS numbers (see connect.ts).
 * Flags are BOOLEAN here (0/1 integers in SQLite); the queries map them.
 */

import { PG_COORDINATION_MIGRATION } from './coordination.js';

/** The value of mailq_meta.application that marks a mailq schema. */
export const APPLICATION = 'mailq';

/**
 * Key of the advisory lock that serialises migrations (and the send index
 * build) per schema: "MLQ1", as the SQLite application_id. The second key is
 * hashtext(schema name).
 */
export const LOCK_CLASS = 0x4d4c5131;

export const META_TABLE = `
  CREATE TABLE mailq_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
`;

export const migrations: readonly string[] = [
  // 1: campaigns, imports, recipients, rejects, suppressions.
  `
  CREATE TABLE campaigns (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft'
      CHECK (status IN ('draft','sending','paused','finished','cancelled')),
    template_json TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    template_source TEXT NOT NULL,
    vars_json TEXT NOT NULL DEFAULT '{}',
    settings_json TEXT NOT NULL DEFAULT '{}'
  );

  CREATE TABLE import_runs (
    id BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running','complete','failed')),
    columns_json TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    imported INTEGER,
    duplicates INTEGER,
    rejected INTEGER,
    total INTEGER
  );
  CREATE INDEX import_runs_campaign ON import_runs(campaign_id, status);

  CREATE TABLE messages (
    id BIGSERIAL PRIMARY KEY,
    -- No REFERENCES on the two parent ids: PostgreSQL checks a foreign key
    -- with a trigger per inserted row, which doubled the insert time of an
    -- import (100,000 rows: 1.97 s with both keys, 0.99 s without), and
    -- unlike SQLite it cannot be switched off per connection without
    -- superuser. The parents are certain: beginImport makes the run, and
    -- campaigns and runs are only deleted when they have no recipients.
    campaign_id BIGINT NOT NULL,
    import_run_id BIGINT NOT NULL,
    line INTEGER NOT NULL,
    address TEXT NOT NULL,
    -- Byte order ("C") for the two keys the indexes compare: they are
    -- normalized ASCII already, and a database whose default collation is a
    -- libc locale (en_US.UTF-8) would otherwise call strcoll on every index
    -- comparison of every imported row.
    address_key TEXT COLLATE "C" NOT NULL,
    domain TEXT COLLATE "C" NOT NULL,
    vars_json TEXT NOT NULL,
    -- One of MessageState (src/store/types.ts); the store only writes those.
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    attempt_id TEXT,
    last_category TEXT,
    last_code INTEGER,
    last_enhanced TEXT,
    last_reply TEXT,
    message_id TEXT,
    sent_at BIGINT,
    possible_duplicate BOOLEAN NOT NULL DEFAULT false,
    updated_at BIGINT
  );
  -- Dedupe within a campaign (ON CONFLICT DO NOTHING); also the lookup for preview --to.
  CREATE UNIQUE INDEX messages_campaign_key ON messages(campaign_id, address_key);

  CREATE TABLE import_rejects (
    id BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    import_run_id BIGINT NOT NULL REFERENCES import_runs(id),
    source TEXT NOT NULL,
    line INTEGER NOT NULL,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    -- Re-running an import must not list the same bad line twice.
    UNIQUE (campaign_id, source, line)
  );

  CREATE TABLE suppressions (
    address_key TEXT COLLATE "C" PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL
  );
  `,
  // 2: the send engine: attempts log, failures, domain state, runs.
  `
  -- The leasing index (SEND_INDEX below) is not created here: maintained row
  -- by row it slows every import; built in bulk at the first send.

  CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    owner TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT,
    settings_json TEXT NOT NULL
  );
  CREATE INDEX runs_campaign ON runs(campaign_id);

  -- Append-only: one row per SMTP try, the raw material of trace and reports.
  CREATE TABLE attempts (
    id BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages(id),
    campaign_id BIGINT NOT NULL,
    attempt_id TEXT NOT NULL,
    run_owner TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    stage TEXT,
    code INTEGER,
    enhanced TEXT,
    category TEXT NOT NULL,
    rule TEXT,
    reply TEXT,
    body_written BOOLEAN NOT NULL DEFAULT false,
    next_state TEXT NOT NULL,
    delay_ms BIGINT
  );
  CREATE INDEX attempts_message ON attempts(message_id);

  -- The dead-letter table: one row per failed recipient, reply kept verbatim.
  CREATE TABLE failures (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id),
    campaign_id BIGINT NOT NULL,
    category TEXT NOT NULL,
    reason TEXT NOT NULL,
    code INTEGER,
    enhanced TEXT,
    reply TEXT,
    attempts INTEGER NOT NULL,
    at BIGINT NOT NULL
  );
  CREATE INDEX failures_campaign ON failures(campaign_id);

  -- Throttle pauses and slow-downs that must survive a restart.
  CREATE TABLE domain_state (
    campaign_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    status_json TEXT NOT NULL,
    rate_factor DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, key)
  );
  `,
  // 3: several send processes on one campaign: shared token buckets, run figures.
  PG_COORDINATION_MIGRATION,
];

export const SCHEMA_VERSION = migrations.length;

/**
 * The index only sending needs, built by the first `send`. One index serves
 * leasing (due rows of one domain in one state, oldest first: `id` last so
 * that ORDER BY next_attempt_at, id reads it in order without a sort) and
 * counts by state.
 */
export const SEND_INDEX_NAME = 'messages_due';
export const SEND_INDEX = `CREATE INDEX IF NOT EXISTS ${SEND_INDEX_NAME} ON messages(campaign_id, state, domain, next_attempt_at, id)`;

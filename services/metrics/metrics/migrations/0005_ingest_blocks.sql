-- Completing an insert that a crash cut in half (see writer.py, "interrupted blocks").
--
-- An INSERT into a raw table is not atomic with its materialized views: ClickHouse commits
-- the raw table's part first and then pushes the block through each MV, one part per target.
-- A kill -9 in between leaves the raw rows stored and some aggregates without them; the
-- redelivered events are then found "already stored" and would never reach those aggregates.
--
-- So every raw row remembers the block it came in (ingest_token = the block's
-- insert_deduplication_token), and ingest_blocks records each block once it reached every
-- table. A redelivered event whose block has no record here is re-sent as that exact block
-- with that token: targets that have it drop it (deduplication window), the others get it.
--
-- Rows stored before this migration have ingest_token '' and count as complete.
-- ingest_blocks has the raw tables' retention (METRICS_RAW_RETENTION_DAYS) on completed_at,
-- which is never earlier than the ingested_at of the block's rows: a block's record outlives
-- its rows, so a stored row is never mistaken for part of an unfinished block.

ALTER TABLE ${db}.sessions_raw ADD COLUMN IF NOT EXISTS ingest_token String DEFAULT ''
    COMMENT 'insert_deduplication_token of the block that stored this row (writer bookkeeping)';

ALTER TABLE ${db}.messages_raw ADD COLUMN IF NOT EXISTS ingest_token String DEFAULT ''
    COMMENT 'insert_deduplication_token of the block that stored this row (writer bookkeeping)';

ALTER TABLE ${db}.usage_raw ADD COLUMN IF NOT EXISTS ingest_token String DEFAULT ''
    COMMENT 'insert_deduplication_token of the block that stored this row (writer bookkeeping)';

ALTER TABLE ${db}.run_errors_raw ADD COLUMN IF NOT EXISTS ingest_token String DEFAULT ''
    COMMENT 'insert_deduplication_token of the block that stored this row (writer bookkeeping)';

CREATE TABLE IF NOT EXISTS ${db}.ingest_blocks
(
    token String COMMENT 'insert_deduplication_token of a block (see the raw tables'' ingest_token)',
    table_name LowCardinality(String) COMMENT 'Raw table the block was inserted into',
    row_count UInt32 COMMENT 'Rows in the block',
    completed_at DateTime('UTC') DEFAULT now() COMMENT 'When the block was known to be in every table'
)
ENGINE = ReplacingMergeTree
ORDER BY token
COMMENT 'Blocks the metrics writer finished: in the raw table and in every materialized view';

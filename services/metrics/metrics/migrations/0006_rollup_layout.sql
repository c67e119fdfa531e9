-- Rollups laid out for reads: the tables of 0004 again (same names, keys, columns and views),
-- re-created with what the metrics calls at 10M usage events showed they pay for.
--
-- A call reads the rows of one user / one agent / all models in its window, in every part of
-- the table, and merges their aggregate states. At 10M usage events (30-day window) the cost
-- was per part touched and per state deserialized, not per row needed:
--
--   * Compact parts (min_bytes_for_wide_part = 1 TiB): one data file per part instead of one
--     per column, each granule of each column compressed on its own. A call that needs a few
--     rows of ~30 columns in each of ~20 parts no longer decompresses ~600 column blocks of
--     up to 1 MiB: the user view takes half the CPU.
--   * Smaller granules (user 256, agent 64 rows; were 1024 / 256): ClickHouse deserializes
--     whole granules of aggregate states; a user has ~190 rows in a 30-day window, an agent ~60.
--   * metrics_agent_* and metrics_system_* are small (MBs per month) and serve the system
--     view, which merges the states of every row in the window. merge_selector_base = 1.5
--     (default 5) merges their parts more eagerly, so a key is about one row (one state to
--     merge) instead of one per part: at 10M events the default policy left ~3 rows per key.
--     The price is more merge work on these small tables; metrics_user_* (big) keeps the
--     default.
--   * metrics_system_*: distinct users (users, active_users) are uniqCombined(12) states -
--     exact up to 256 users, then a HyperLogLog of 4096 cells (~1 % error) - instead of uniq
--     (a hash set of up to 65536 users). Merging the ~3,900-user sets of each (day, model) was
--     the largest part of the system view (~50 ms of CPU); the sketches merge in a few.
--     metrics_user_* and metrics_agent_* keep uniq: their sets are small.
--
-- non_replicated_deduplication_window on every table, as in 0004 (they are MV targets of the
-- raw tables, reached by the writer's insert_deduplication_token).
-- Retention (TTL on bucket) is applied on every start (migrate.apply_retention).
--
-- Idempotent: everything is dropped and rebuilt from tables this migration does not touch
-- (metrics_hourly / metrics_daily and usage_raw), so a run interrupted anywhere is simply run
-- again. As in 0004, the t-digests of metrics_agent_* / metrics_system_* can only be rebuilt
-- from usage_raw: buckets older than the raw retention keep exact counts but get null
-- p50/p95/p99 in the agent-wide and system views.

-- 1. The rollups of 0004 and their 18 views go (views first: nothing may feed a dropped table).
DROP VIEW IF EXISTS ${db}.mv_sessions_user_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_messages_user_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_usage_user_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_sessions_user_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_messages_user_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_usage_user_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_sessions_agent_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_messages_agent_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_usage_agent_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_sessions_agent_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_messages_agent_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_usage_agent_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_sessions_system_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_messages_system_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_usage_system_hourly SYNC;
DROP VIEW IF EXISTS ${db}.mv_sessions_system_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_messages_system_daily SYNC;
DROP VIEW IF EXISTS ${db}.mv_usage_system_daily SYNC;
DROP TABLE IF EXISTS ${db}.metrics_user_hourly SYNC;
DROP TABLE IF EXISTS ${db}.metrics_user_daily SYNC;
DROP TABLE IF EXISTS ${db}.metrics_agent_hourly SYNC;
DROP TABLE IF EXISTS ${db}.metrics_agent_daily SYNC;
DROP TABLE IF EXISTS ${db}.metrics_system_hourly SYNC;
DROP TABLE IF EXISTS ${db}.metrics_system_daily SYNC;

-- 2. The rollups, laid out for reads (see the header).

CREATE TABLE IF NOT EXISTS ${db}.metrics_user_hourly
(
    bucket DateTime('UTC') COMMENT 'Start of the hour (UTC)',
    agent_id String COMMENT 'Agent',
    user_id String COMMENT 'User',
    model LowCardinality(String) COMMENT 'provider:model (empty for sessions)',
    sessions SimpleAggregateFunction(sum, UInt64) COMMENT 'SessionCreated events',
    user_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunRequested events (messages sent by users)',
    assistant_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunCompleted events (messages produced by agents)',
    runs SimpleAggregateFunction(sum, UInt64) COMMENT 'UsageRecorded events (finished runs)',
    completed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status completed',
    failed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status failed (the errors)',
    cancelled_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status cancelled',
    errors_by_type SimpleAggregateFunction(sumMap, Map(String, UInt64)) COMMENT 'Failed runs per error_type',
    input_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens',
    output_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Completion tokens',
    total_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Total tokens',
    cached_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens served from the provider cache',
    reasoning_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Reasoning tokens',
    cost_usd SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of the known run costs in USD',
    priced_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs whose cost was known (cost_usd not NULL)',
    latency_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of run latencies in ms (average = latency_ms_sum / runs)',
    latency_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state (reservoir, exact up to 8192 values): quantilesMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state (reservoir): quantilesMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (user_id, bucket, agent_id, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256, min_bytes_for_wide_part = 1099511627776
COMMENT 'Hourly aggregates by user, agent and model, keyed by user first (the user view and the agent view restricted to one user)';

CREATE TABLE IF NOT EXISTS ${db}.metrics_user_daily
(
    bucket DateTime('UTC') COMMENT 'Start of the day (UTC)',
    agent_id String COMMENT 'Agent',
    user_id String COMMENT 'User',
    model LowCardinality(String) COMMENT 'provider:model (empty for sessions)',
    sessions SimpleAggregateFunction(sum, UInt64) COMMENT 'SessionCreated events',
    user_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunRequested events (messages sent by users)',
    assistant_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunCompleted events (messages produced by agents)',
    runs SimpleAggregateFunction(sum, UInt64) COMMENT 'UsageRecorded events (finished runs)',
    completed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status completed',
    failed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status failed (the errors)',
    cancelled_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status cancelled',
    errors_by_type SimpleAggregateFunction(sumMap, Map(String, UInt64)) COMMENT 'Failed runs per error_type',
    input_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens',
    output_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Completion tokens',
    total_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Total tokens',
    cached_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens served from the provider cache',
    reasoning_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Reasoning tokens',
    cost_usd SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of the known run costs in USD',
    priced_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs whose cost was known (cost_usd not NULL)',
    latency_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of run latencies in ms (average = latency_ms_sum / runs)',
    latency_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state (reservoir, exact up to 8192 values): quantilesMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state (reservoir): quantilesMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (user_id, bucket, agent_id, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256, min_bytes_for_wide_part = 1099511627776
COMMENT 'Daily aggregates by user, agent and model, keyed by user first (the user view and the agent view restricted to one user)';

CREATE TABLE IF NOT EXISTS ${db}.metrics_agent_hourly
(
    bucket DateTime('UTC') COMMENT 'Start of the hour (UTC)',
    agent_id String COMMENT 'Agent',
    model LowCardinality(String) COMMENT 'provider:model (empty for sessions)',
    sessions SimpleAggregateFunction(sum, UInt64) COMMENT 'SessionCreated events',
    user_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunRequested events (messages sent by users)',
    assistant_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunCompleted events (messages produced by agents)',
    runs SimpleAggregateFunction(sum, UInt64) COMMENT 'UsageRecorded events (finished runs)',
    completed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status completed',
    failed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status failed (the errors)',
    cancelled_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status cancelled',
    errors_by_type SimpleAggregateFunction(sumMap, Map(String, UInt64)) COMMENT 'Failed runs per error_type',
    input_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens',
    output_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Completion tokens',
    total_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Total tokens',
    cached_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens served from the provider cache',
    reasoning_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Reasoning tokens',
    cost_usd SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of the known run costs in USD',
    priced_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs whose cost was known (cost_usd not NULL)',
    latency_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of run latencies in ms (average = latency_ms_sum / runs)',
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)',
    active_users AggregateFunction(uniq, String) COMMENT 'Distinct users with a run: uniqMerge(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (agent_id, bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 64, min_bytes_for_wide_part = 1099511627776, merge_selector_base = 1.5
COMMENT 'Hourly aggregates by agent and model, without users (the agent view and top agents)';

CREATE TABLE IF NOT EXISTS ${db}.metrics_agent_daily
(
    bucket DateTime('UTC') COMMENT 'Start of the day (UTC)',
    agent_id String COMMENT 'Agent',
    model LowCardinality(String) COMMENT 'provider:model (empty for sessions)',
    sessions SimpleAggregateFunction(sum, UInt64) COMMENT 'SessionCreated events',
    user_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunRequested events (messages sent by users)',
    assistant_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunCompleted events (messages produced by agents)',
    runs SimpleAggregateFunction(sum, UInt64) COMMENT 'UsageRecorded events (finished runs)',
    completed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status completed',
    failed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status failed (the errors)',
    cancelled_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status cancelled',
    errors_by_type SimpleAggregateFunction(sumMap, Map(String, UInt64)) COMMENT 'Failed runs per error_type',
    input_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens',
    output_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Completion tokens',
    total_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Total tokens',
    cached_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens served from the provider cache',
    reasoning_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Reasoning tokens',
    cost_usd SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of the known run costs in USD',
    priced_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs whose cost was known (cost_usd not NULL)',
    latency_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of run latencies in ms (average = latency_ms_sum / runs)',
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)',
    active_users AggregateFunction(uniq, String) COMMENT 'Distinct users with a run: uniqMerge(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (agent_id, bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 64, min_bytes_for_wide_part = 1099511627776, merge_selector_base = 1.5
COMMENT 'Daily aggregates by agent and model, without users (the agent view and top agents)';

CREATE TABLE IF NOT EXISTS ${db}.metrics_system_hourly
(
    bucket DateTime('UTC') COMMENT 'Start of the hour (UTC)',
    model LowCardinality(String) COMMENT 'provider:model (empty for sessions)',
    sessions SimpleAggregateFunction(sum, UInt64) COMMENT 'SessionCreated events',
    user_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunRequested events (messages sent by users)',
    assistant_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunCompleted events (messages produced by agents)',
    runs SimpleAggregateFunction(sum, UInt64) COMMENT 'UsageRecorded events (finished runs)',
    completed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status completed',
    failed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status failed (the errors)',
    cancelled_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status cancelled',
    errors_by_type SimpleAggregateFunction(sumMap, Map(String, UInt64)) COMMENT 'Failed runs per error_type',
    input_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens',
    output_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Completion tokens',
    total_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Total tokens',
    cached_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens served from the provider cache',
    reasoning_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Reasoning tokens',
    cost_usd SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of the known run costs in USD',
    priced_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs whose cost was known (cost_usd not NULL)',
    latency_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of run latencies in ms (average = latency_ms_sum / runs)',
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniqCombined(12), String) COMMENT 'Distinct users with a session, message or run (estimate, exact up to 256): uniqCombinedMerge(12)(users)',
    active_users AggregateFunction(uniqCombined(12), String) COMMENT 'Distinct users with a run (estimate, exact up to 256): uniqCombinedMerge(12)(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256, min_bytes_for_wide_part = 1099511627776, merge_selector_base = 1.5
COMMENT 'Hourly aggregates by model only (the system view totals, models and series)';

CREATE TABLE IF NOT EXISTS ${db}.metrics_system_daily
(
    bucket DateTime('UTC') COMMENT 'Start of the day (UTC)',
    model LowCardinality(String) COMMENT 'provider:model (empty for sessions)',
    sessions SimpleAggregateFunction(sum, UInt64) COMMENT 'SessionCreated events',
    user_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunRequested events (messages sent by users)',
    assistant_messages SimpleAggregateFunction(sum, UInt64) COMMENT 'RunCompleted events (messages produced by agents)',
    runs SimpleAggregateFunction(sum, UInt64) COMMENT 'UsageRecorded events (finished runs)',
    completed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status completed',
    failed_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status failed (the errors)',
    cancelled_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with status cancelled',
    errors_by_type SimpleAggregateFunction(sumMap, Map(String, UInt64)) COMMENT 'Failed runs per error_type',
    input_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens',
    output_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Completion tokens',
    total_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Total tokens',
    cached_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Prompt tokens served from the provider cache',
    reasoning_tokens SimpleAggregateFunction(sum, UInt64) COMMENT 'Reasoning tokens',
    cost_usd SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of the known run costs in USD',
    priced_runs SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs whose cost was known (cost_usd not NULL)',
    latency_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of run latencies in ms (average = latency_ms_sum / runs)',
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token t-digest (estimate): quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniqCombined(12), String) COMMENT 'Distinct users with a session, message or run (estimate, exact up to 256): uniqCombinedMerge(12)(users)',
    active_users AggregateFunction(uniqCombined(12), String) COMMENT 'Distinct users with a run (estimate, exact up to 256): uniqCombinedMerge(12)(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256, min_bytes_for_wide_part = 1099511627776, merge_selector_base = 1.5
COMMENT 'Daily aggregates by model only (the system view totals, models and series)';

-- 3. Materialized views: as in 0004 (one per source and target, none chained), the system
-- ones with uniqCombinedState(12).

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_user_hourly TO ${db}.metrics_user_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    user_id,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY user_id, bucket, agent_id
COMMENT 'Feeds metrics_user_hourly with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_user_hourly TO ${db}.metrics_user_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    user_id,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
FROM ${db}.messages_raw
GROUP BY user_id, bucket, agent_id, model
COMMENT 'Feeds metrics_user_hourly with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_user_hourly TO ${db}.metrics_user_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    user_id,
    model,
    toUInt64(count()) AS runs,
    toUInt64(countIf(u.status = 'completed')) AS completed_runs,
    toUInt64(countIf(u.status = 'failed')) AS failed_runs,
    toUInt64(countIf(u.status = 'cancelled')) AS cancelled_runs,
    sumMapIf(map(if(u.error_type = '', 'unknown', toString(u.error_type)), toUInt64(1)), u.status = 'failed') AS errors_by_type,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.total_tokens) AS total_tokens,
    sum(u.cached_tokens) AS cached_tokens,
    sum(u.reasoning_tokens) AS reasoning_tokens,
    toFloat64(sumIf(assumeNotNull(u.cost_usd), isNotNull(u.cost_usd))) AS cost_usd,
    toUInt64(countIf(isNotNull(u.cost_usd))) AS priced_runs,
    sum(u.latency_ms) AS latency_ms_sum,
    quantilesState(0.5, 0.95, 0.99)(u.latency_ms) AS latency_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms))) AS ttft_ms_sum,
    toUInt64(countIf(isNotNull(u.ttft_ms))) AS ttft_count,
    quantilesStateIf(0.5, 0.95, 0.99)(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms)) AS ttft_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.queue_wait_ms), isNotNull(u.queue_wait_ms))) AS queue_wait_ms_sum,
    toUInt64(countIf(isNotNull(u.queue_wait_ms))) AS queue_wait_count,
    uniqState(user_id) AS users
FROM ${db}.usage_raw AS u
GROUP BY user_id, bucket, agent_id, model
COMMENT 'Feeds metrics_user_hourly with finished runs (tokens, cost, latency, errors) from usage_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_user_daily TO ${db}.metrics_user_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    user_id,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY user_id, bucket, agent_id
COMMENT 'Feeds metrics_user_daily with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_user_daily TO ${db}.metrics_user_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    user_id,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
FROM ${db}.messages_raw
GROUP BY user_id, bucket, agent_id, model
COMMENT 'Feeds metrics_user_daily with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_user_daily TO ${db}.metrics_user_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    user_id,
    model,
    toUInt64(count()) AS runs,
    toUInt64(countIf(u.status = 'completed')) AS completed_runs,
    toUInt64(countIf(u.status = 'failed')) AS failed_runs,
    toUInt64(countIf(u.status = 'cancelled')) AS cancelled_runs,
    sumMapIf(map(if(u.error_type = '', 'unknown', toString(u.error_type)), toUInt64(1)), u.status = 'failed') AS errors_by_type,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.total_tokens) AS total_tokens,
    sum(u.cached_tokens) AS cached_tokens,
    sum(u.reasoning_tokens) AS reasoning_tokens,
    toFloat64(sumIf(assumeNotNull(u.cost_usd), isNotNull(u.cost_usd))) AS cost_usd,
    toUInt64(countIf(isNotNull(u.cost_usd))) AS priced_runs,
    sum(u.latency_ms) AS latency_ms_sum,
    quantilesState(0.5, 0.95, 0.99)(u.latency_ms) AS latency_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms))) AS ttft_ms_sum,
    toUInt64(countIf(isNotNull(u.ttft_ms))) AS ttft_count,
    quantilesStateIf(0.5, 0.95, 0.99)(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms)) AS ttft_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.queue_wait_ms), isNotNull(u.queue_wait_ms))) AS queue_wait_ms_sum,
    toUInt64(countIf(isNotNull(u.queue_wait_ms))) AS queue_wait_count,
    uniqState(user_id) AS users
FROM ${db}.usage_raw AS u
GROUP BY user_id, bucket, agent_id, model
COMMENT 'Feeds metrics_user_daily with finished runs (tokens, cost, latency, errors) from usage_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_agent_hourly TO ${db}.metrics_agent_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY agent_id, bucket
COMMENT 'Feeds metrics_agent_hourly with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_agent_hourly TO ${db}.metrics_agent_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
FROM ${db}.messages_raw
GROUP BY agent_id, bucket, model
COMMENT 'Feeds metrics_agent_hourly with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_agent_hourly TO ${db}.metrics_agent_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    model,
    toUInt64(count()) AS runs,
    toUInt64(countIf(u.status = 'completed')) AS completed_runs,
    toUInt64(countIf(u.status = 'failed')) AS failed_runs,
    toUInt64(countIf(u.status = 'cancelled')) AS cancelled_runs,
    sumMapIf(map(if(u.error_type = '', 'unknown', toString(u.error_type)), toUInt64(1)), u.status = 'failed') AS errors_by_type,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.total_tokens) AS total_tokens,
    sum(u.cached_tokens) AS cached_tokens,
    sum(u.reasoning_tokens) AS reasoning_tokens,
    toFloat64(sumIf(assumeNotNull(u.cost_usd), isNotNull(u.cost_usd))) AS cost_usd,
    toUInt64(countIf(isNotNull(u.cost_usd))) AS priced_runs,
    sum(u.latency_ms) AS latency_ms_sum,
    quantilesTDigestState(0.5, 0.95, 0.99)(u.latency_ms) AS latency_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms))) AS ttft_ms_sum,
    toUInt64(countIf(isNotNull(u.ttft_ms))) AS ttft_count,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms)) AS ttft_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.queue_wait_ms), isNotNull(u.queue_wait_ms))) AS queue_wait_ms_sum,
    toUInt64(countIf(isNotNull(u.queue_wait_ms))) AS queue_wait_count,
    uniqState(user_id) AS users,
    uniqState(user_id) AS active_users
FROM ${db}.usage_raw AS u
GROUP BY agent_id, bucket, model
COMMENT 'Feeds metrics_agent_hourly with finished runs (tokens, cost, latency, errors) from usage_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_agent_daily TO ${db}.metrics_agent_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY agent_id, bucket
COMMENT 'Feeds metrics_agent_daily with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_agent_daily TO ${db}.metrics_agent_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
FROM ${db}.messages_raw
GROUP BY agent_id, bucket, model
COMMENT 'Feeds metrics_agent_daily with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_agent_daily TO ${db}.metrics_agent_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    model,
    toUInt64(count()) AS runs,
    toUInt64(countIf(u.status = 'completed')) AS completed_runs,
    toUInt64(countIf(u.status = 'failed')) AS failed_runs,
    toUInt64(countIf(u.status = 'cancelled')) AS cancelled_runs,
    sumMapIf(map(if(u.error_type = '', 'unknown', toString(u.error_type)), toUInt64(1)), u.status = 'failed') AS errors_by_type,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.total_tokens) AS total_tokens,
    sum(u.cached_tokens) AS cached_tokens,
    sum(u.reasoning_tokens) AS reasoning_tokens,
    toFloat64(sumIf(assumeNotNull(u.cost_usd), isNotNull(u.cost_usd))) AS cost_usd,
    toUInt64(countIf(isNotNull(u.cost_usd))) AS priced_runs,
    sum(u.latency_ms) AS latency_ms_sum,
    quantilesTDigestState(0.5, 0.95, 0.99)(u.latency_ms) AS latency_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms))) AS ttft_ms_sum,
    toUInt64(countIf(isNotNull(u.ttft_ms))) AS ttft_count,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms)) AS ttft_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.queue_wait_ms), isNotNull(u.queue_wait_ms))) AS queue_wait_ms_sum,
    toUInt64(countIf(isNotNull(u.queue_wait_ms))) AS queue_wait_count,
    uniqState(user_id) AS users,
    uniqState(user_id) AS active_users
FROM ${db}.usage_raw AS u
GROUP BY agent_id, bucket, model
COMMENT 'Feeds metrics_agent_daily with finished runs (tokens, cost, latency, errors) from usage_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_system_hourly TO ${db}.metrics_system_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqCombinedStateIf(12)(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY bucket
COMMENT 'Feeds metrics_system_hourly with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_system_hourly TO ${db}.metrics_system_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqCombinedState(12)(user_id) AS users
FROM ${db}.messages_raw
GROUP BY bucket, model
COMMENT 'Feeds metrics_system_hourly with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_system_hourly TO ${db}.metrics_system_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    model,
    toUInt64(count()) AS runs,
    toUInt64(countIf(u.status = 'completed')) AS completed_runs,
    toUInt64(countIf(u.status = 'failed')) AS failed_runs,
    toUInt64(countIf(u.status = 'cancelled')) AS cancelled_runs,
    sumMapIf(map(if(u.error_type = '', 'unknown', toString(u.error_type)), toUInt64(1)), u.status = 'failed') AS errors_by_type,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.total_tokens) AS total_tokens,
    sum(u.cached_tokens) AS cached_tokens,
    sum(u.reasoning_tokens) AS reasoning_tokens,
    toFloat64(sumIf(assumeNotNull(u.cost_usd), isNotNull(u.cost_usd))) AS cost_usd,
    toUInt64(countIf(isNotNull(u.cost_usd))) AS priced_runs,
    sum(u.latency_ms) AS latency_ms_sum,
    quantilesTDigestState(0.5, 0.95, 0.99)(u.latency_ms) AS latency_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms))) AS ttft_ms_sum,
    toUInt64(countIf(isNotNull(u.ttft_ms))) AS ttft_count,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms)) AS ttft_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.queue_wait_ms), isNotNull(u.queue_wait_ms))) AS queue_wait_ms_sum,
    toUInt64(countIf(isNotNull(u.queue_wait_ms))) AS queue_wait_count,
    uniqCombinedState(12)(user_id) AS users,
    uniqCombinedState(12)(user_id) AS active_users
FROM ${db}.usage_raw AS u
GROUP BY bucket, model
COMMENT 'Feeds metrics_system_hourly with finished runs (tokens, cost, latency, errors) from usage_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_system_daily TO ${db}.metrics_system_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqCombinedStateIf(12)(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY bucket
COMMENT 'Feeds metrics_system_daily with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_system_daily TO ${db}.metrics_system_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqCombinedState(12)(user_id) AS users
FROM ${db}.messages_raw
GROUP BY bucket, model
COMMENT 'Feeds metrics_system_daily with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_system_daily TO ${db}.metrics_system_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    model,
    toUInt64(count()) AS runs,
    toUInt64(countIf(u.status = 'completed')) AS completed_runs,
    toUInt64(countIf(u.status = 'failed')) AS failed_runs,
    toUInt64(countIf(u.status = 'cancelled')) AS cancelled_runs,
    sumMapIf(map(if(u.error_type = '', 'unknown', toString(u.error_type)), toUInt64(1)), u.status = 'failed') AS errors_by_type,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.total_tokens) AS total_tokens,
    sum(u.cached_tokens) AS cached_tokens,
    sum(u.reasoning_tokens) AS reasoning_tokens,
    toFloat64(sumIf(assumeNotNull(u.cost_usd), isNotNull(u.cost_usd))) AS cost_usd,
    toUInt64(countIf(isNotNull(u.cost_usd))) AS priced_runs,
    sum(u.latency_ms) AS latency_ms_sum,
    quantilesTDigestState(0.5, 0.95, 0.99)(u.latency_ms) AS latency_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms))) AS ttft_ms_sum,
    toUInt64(countIf(isNotNull(u.ttft_ms))) AS ttft_count,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(u.ttft_ms), isNotNull(u.ttft_ms)) AS ttft_ms_quantiles,
    toFloat64(sumIf(assumeNotNull(u.queue_wait_ms), isNotNull(u.queue_wait_ms))) AS queue_wait_ms_sum,
    toUInt64(countIf(isNotNull(u.queue_wait_ms))) AS queue_wait_count,
    uniqCombinedState(12)(user_id) AS users,
    uniqCombinedState(12)(user_id) AS active_users
FROM ${db}.usage_raw AS u
GROUP BY bucket, model
COMMENT 'Feeds metrics_system_daily with finished runs (tokens, cost, latency, errors) from usage_raw';

-- 4. Backfill from metrics_hourly / metrics_daily (counts, sums, errors, reservoir quantiles,
-- distinct users: they are kept per user) and usage_raw (t-digests), exactly as 0004 does.
-- The service migrates before it consumes, so nothing is inserted meanwhile.
-- insert_deduplicate = 0: a refill must not be dropped as a duplicate of a block that an
-- interrupted run already inserted.
-- metrics_system_*: per (bucket, model, user) first, so each user is added to the sketch once,
-- if any of their rows counted them (users) / had a run (active_users).

TRUNCATE TABLE ${db}.metrics_user_hourly;

INSERT INTO ${db}.metrics_user_hourly (bucket, agent_id, user_id, model, sessions, user_messages, assistant_messages, runs, completed_runs, failed_runs, cancelled_runs, input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd, priced_runs, latency_ms_sum, ttft_ms_sum, ttft_count, queue_wait_ms_sum, queue_wait_count, errors_by_type, latency_ms_quantiles, ttft_ms_quantiles, users)
SELECT
    bucket,
    agent_id,
    user_id,
    model,
    sum(sessions),
    sum(user_messages),
    sum(assistant_messages),
    sum(runs),
    sum(completed_runs),
    sum(failed_runs),
    sum(cancelled_runs),
    sum(input_tokens),
    sum(output_tokens),
    sum(total_tokens),
    sum(cached_tokens),
    sum(reasoning_tokens),
    sum(cost_usd),
    sum(priced_runs),
    sum(latency_ms_sum),
    sum(ttft_ms_sum),
    sum(ttft_count),
    sum(queue_wait_ms_sum),
    sum(queue_wait_count),
    sumMap(errors_by_type),
    quantilesMergeState(0.5, 0.95, 0.99)(latency_ms_quantiles),
    quantilesMergeState(0.5, 0.95, 0.99)(ttft_ms_quantiles),
    uniqMergeState(users)
FROM ${db}.metrics_hourly
GROUP BY bucket, agent_id, user_id, model
SETTINGS insert_deduplicate = 0;

TRUNCATE TABLE ${db}.metrics_user_daily;

INSERT INTO ${db}.metrics_user_daily (bucket, agent_id, user_id, model, sessions, user_messages, assistant_messages, runs, completed_runs, failed_runs, cancelled_runs, input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd, priced_runs, latency_ms_sum, ttft_ms_sum, ttft_count, queue_wait_ms_sum, queue_wait_count, errors_by_type, latency_ms_quantiles, ttft_ms_quantiles, users)
SELECT
    bucket,
    agent_id,
    user_id,
    model,
    sum(sessions),
    sum(user_messages),
    sum(assistant_messages),
    sum(runs),
    sum(completed_runs),
    sum(failed_runs),
    sum(cancelled_runs),
    sum(input_tokens),
    sum(output_tokens),
    sum(total_tokens),
    sum(cached_tokens),
    sum(reasoning_tokens),
    sum(cost_usd),
    sum(priced_runs),
    sum(latency_ms_sum),
    sum(ttft_ms_sum),
    sum(ttft_count),
    sum(queue_wait_ms_sum),
    sum(queue_wait_count),
    sumMap(errors_by_type),
    quantilesMergeState(0.5, 0.95, 0.99)(latency_ms_quantiles),
    quantilesMergeState(0.5, 0.95, 0.99)(ttft_ms_quantiles),
    uniqMergeState(users)
FROM ${db}.metrics_daily
GROUP BY bucket, agent_id, user_id, model
SETTINGS insert_deduplicate = 0;

TRUNCATE TABLE ${db}.metrics_agent_hourly;

INSERT INTO ${db}.metrics_agent_hourly (bucket, agent_id, model, sessions, user_messages, assistant_messages, runs, completed_runs, failed_runs, cancelled_runs, input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd, priced_runs, latency_ms_sum, ttft_ms_sum, ttft_count, queue_wait_ms_sum, queue_wait_count, errors_by_type, users, active_users)
SELECT
    bucket,
    agent_id,
    model,
    sum(sessions),
    sum(user_messages),
    sum(assistant_messages),
    sum(runs),
    sum(completed_runs),
    sum(failed_runs),
    sum(cancelled_runs),
    sum(input_tokens),
    sum(output_tokens),
    sum(total_tokens),
    sum(cached_tokens),
    sum(reasoning_tokens),
    sum(cost_usd),
    sum(priced_runs),
    sum(latency_ms_sum),
    sum(ttft_ms_sum),
    sum(ttft_count),
    sum(queue_wait_ms_sum),
    sum(queue_wait_count),
    sumMap(errors_by_type),
    uniqMergeState(users),
    uniqMergeStateIf(users, runs > 0)
FROM ${db}.metrics_hourly
GROUP BY bucket, agent_id, model
SETTINGS insert_deduplicate = 0;

INSERT INTO ${db}.metrics_agent_hourly (bucket, agent_id, model, latency_ms_quantiles, ttft_ms_quantiles)
SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    model,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_ms_quantiles,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(ttft_ms), isNotNull(ttft_ms)) AS ttft_ms_quantiles
FROM ${db}.usage_raw
GROUP BY bucket, agent_id, model
SETTINGS insert_deduplicate = 0;

TRUNCATE TABLE ${db}.metrics_agent_daily;

INSERT INTO ${db}.metrics_agent_daily (bucket, agent_id, model, sessions, user_messages, assistant_messages, runs, completed_runs, failed_runs, cancelled_runs, input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd, priced_runs, latency_ms_sum, ttft_ms_sum, ttft_count, queue_wait_ms_sum, queue_wait_count, errors_by_type, users, active_users)
SELECT
    bucket,
    agent_id,
    model,
    sum(sessions),
    sum(user_messages),
    sum(assistant_messages),
    sum(runs),
    sum(completed_runs),
    sum(failed_runs),
    sum(cancelled_runs),
    sum(input_tokens),
    sum(output_tokens),
    sum(total_tokens),
    sum(cached_tokens),
    sum(reasoning_tokens),
    sum(cost_usd),
    sum(priced_runs),
    sum(latency_ms_sum),
    sum(ttft_ms_sum),
    sum(ttft_count),
    sum(queue_wait_ms_sum),
    sum(queue_wait_count),
    sumMap(errors_by_type),
    uniqMergeState(users),
    uniqMergeStateIf(users, runs > 0)
FROM ${db}.metrics_daily
GROUP BY bucket, agent_id, model
SETTINGS insert_deduplicate = 0;

INSERT INTO ${db}.metrics_agent_daily (bucket, agent_id, model, latency_ms_quantiles, ttft_ms_quantiles)
SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    model,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_ms_quantiles,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(ttft_ms), isNotNull(ttft_ms)) AS ttft_ms_quantiles
FROM ${db}.usage_raw
GROUP BY bucket, agent_id, model
SETTINGS insert_deduplicate = 0;

TRUNCATE TABLE ${db}.metrics_system_hourly;

INSERT INTO ${db}.metrics_system_hourly (bucket, model, sessions, user_messages, assistant_messages, runs, completed_runs, failed_runs, cancelled_runs, input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd, priced_runs, latency_ms_sum, ttft_ms_sum, ttft_count, queue_wait_ms_sum, queue_wait_count, errors_by_type, users, active_users)
SELECT
    bucket,
    model,
    sum(sessions),
    sum(user_messages),
    sum(assistant_messages),
    sum(runs),
    sum(completed_runs),
    sum(failed_runs),
    sum(cancelled_runs),
    sum(input_tokens),
    sum(output_tokens),
    sum(total_tokens),
    sum(cached_tokens),
    sum(reasoning_tokens),
    sum(cost_usd),
    sum(priced_runs),
    sum(latency_ms_sum),
    sum(ttft_ms_sum),
    sum(ttft_count),
    sum(queue_wait_ms_sum),
    sum(queue_wait_count),
    sumMap(errors_by_type),
    uniqCombinedStateIf(12)(user_id, counted),
    uniqCombinedStateIf(12)(user_id, runs > 0)
FROM
(
    SELECT
        bucket,
        model,
        user_id,
        sum(sessions) AS sessions,
        sum(user_messages) AS user_messages,
        sum(assistant_messages) AS assistant_messages,
        sum(runs) AS runs,
        sum(completed_runs) AS completed_runs,
        sum(failed_runs) AS failed_runs,
        sum(cancelled_runs) AS cancelled_runs,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        sum(total_tokens) AS total_tokens,
        sum(cached_tokens) AS cached_tokens,
        sum(reasoning_tokens) AS reasoning_tokens,
        sum(cost_usd) AS cost_usd,
        sum(priced_runs) AS priced_runs,
        sum(latency_ms_sum) AS latency_ms_sum,
        sum(ttft_ms_sum) AS ttft_ms_sum,
        sum(ttft_count) AS ttft_count,
        sum(queue_wait_ms_sum) AS queue_wait_ms_sum,
        sum(queue_wait_count) AS queue_wait_count,
        sumMap(errors_by_type) AS errors_by_type,
        uniqMerge(users) > 0 AS counted
    FROM ${db}.metrics_hourly
    GROUP BY bucket, model, user_id
)
GROUP BY bucket, model
SETTINGS insert_deduplicate = 0;

INSERT INTO ${db}.metrics_system_hourly (bucket, model, latency_ms_quantiles, ttft_ms_quantiles)
SELECT
    toStartOfHour(occurred_at) AS bucket,
    model,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_ms_quantiles,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(ttft_ms), isNotNull(ttft_ms)) AS ttft_ms_quantiles
FROM ${db}.usage_raw
GROUP BY bucket, model
SETTINGS insert_deduplicate = 0;

TRUNCATE TABLE ${db}.metrics_system_daily;

INSERT INTO ${db}.metrics_system_daily (bucket, model, sessions, user_messages, assistant_messages, runs, completed_runs, failed_runs, cancelled_runs, input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd, priced_runs, latency_ms_sum, ttft_ms_sum, ttft_count, queue_wait_ms_sum, queue_wait_count, errors_by_type, users, active_users)
SELECT
    bucket,
    model,
    sum(sessions),
    sum(user_messages),
    sum(assistant_messages),
    sum(runs),
    sum(completed_runs),
    sum(failed_runs),
    sum(cancelled_runs),
    sum(input_tokens),
    sum(output_tokens),
    sum(total_tokens),
    sum(cached_tokens),
    sum(reasoning_tokens),
    sum(cost_usd),
    sum(priced_runs),
    sum(latency_ms_sum),
    sum(ttft_ms_sum),
    sum(ttft_count),
    sum(queue_wait_ms_sum),
    sum(queue_wait_count),
    sumMap(errors_by_type),
    uniqCombinedStateIf(12)(user_id, counted),
    uniqCombinedStateIf(12)(user_id, runs > 0)
FROM
(
    SELECT
        bucket,
        model,
        user_id,
        sum(sessions) AS sessions,
        sum(user_messages) AS user_messages,
        sum(assistant_messages) AS assistant_messages,
        sum(runs) AS runs,
        sum(completed_runs) AS completed_runs,
        sum(failed_runs) AS failed_runs,
        sum(cancelled_runs) AS cancelled_runs,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        sum(total_tokens) AS total_tokens,
        sum(cached_tokens) AS cached_tokens,
        sum(reasoning_tokens) AS reasoning_tokens,
        sum(cost_usd) AS cost_usd,
        sum(priced_runs) AS priced_runs,
        sum(latency_ms_sum) AS latency_ms_sum,
        sum(ttft_ms_sum) AS ttft_ms_sum,
        sum(ttft_count) AS ttft_count,
        sum(queue_wait_ms_sum) AS queue_wait_ms_sum,
        sum(queue_wait_count) AS queue_wait_count,
        sumMap(errors_by_type) AS errors_by_type,
        uniqMerge(users) > 0 AS counted
    FROM ${db}.metrics_daily
    GROUP BY bucket, model, user_id
)
GROUP BY bucket, model
SETTINGS insert_deduplicate = 0;

INSERT INTO ${db}.metrics_system_daily (bucket, model, latency_ms_quantiles, ttft_ms_quantiles)
SELECT
    toStartOfDay(occurred_at) AS bucket,
    model,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_ms_quantiles,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(assumeNotNull(ttft_ms), isNotNull(ttft_ms)) AS ttft_ms_quantiles
FROM ${db}.usage_raw
GROUP BY bucket, model
SETTINGS insert_deduplicate = 0;

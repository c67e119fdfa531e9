-- Rollups: the same counters as metrics_hourly / metrics_daily, keyed for the three API views.
--
-- metrics_hourly/daily are keyed (agent_id, bucket, user_id, model): with many users they
-- barely shrink the events, and a user filter cannot use the key. So:
--
--   metrics_user_{hourly,daily}    (user_id, bucket, agent_id, model)  user view, agent view with user_id
--   metrics_agent_{hourly,daily}   (agent_id, bucket, model)           agent view, system top agents
--   metrics_system_{hourly,daily}  (bucket, model)                     system view totals/models/series
--
-- Counts, sums and cost are exact everywhere. metrics_user_* keeps the reservoir quantiles
-- (quantiles(): exact up to 8192 values per state). metrics_agent_* / metrics_system_* use
-- quantilesTDigest: a bounded state (a few hundred centroids) that merges cheaply, with an
-- approximate answer (about 1 % rank error, Float32 precision) - see the README.
-- Without user_id, "users with a run" cannot be derived from the rows (uniqMergeIf(users,
-- runs > 0) needs one row per user), hence the separate active_users state.
--
-- Fed by their own materialized views from the raw tables (not chained on metrics_*), so the
-- writer's insert_deduplication_token + deduplicate_blocks_in_dependent_materialized_views
-- reach them like every other MV target: each has non_replicated_deduplication_window.
-- index_granularity is small (1024 / 256 rows): a call reads the rows of one user or agent,
-- and those rows carry aggregate states that are deserialized a granule at a time.
-- Retention (TTL on bucket) follows METRICS_HOURLY/DAILY_RETENTION_DAYS (migrate.retention_plan).


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
    latency_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state: quantilesMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state: quantilesMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (user_id, bucket, agent_id, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024
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
    latency_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state: quantilesMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state: quantilesMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (user_id, bucket, agent_id, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024
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
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)',
    active_users AggregateFunction(uniq, String) COMMENT 'Distinct users with a run: uniqMerge(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (agent_id, bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256
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
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)',
    active_users AggregateFunction(uniq, String) COMMENT 'Distinct users with a run: uniqMerge(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (agent_id, bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256
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
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)',
    active_users AggregateFunction(uniq, String) COMMENT 'Distinct users with a run: uniqMerge(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256
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
    latency_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Run latency quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    ttft_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known times to first token in ms',
    ttft_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known time to first token',
    ttft_ms_quantiles AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64) COMMENT 'Time to first token quantile state: quantilesTDigestMerge(0.5, 0.95, 0.99)',
    queue_wait_ms_sum SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of known queue waits in ms',
    queue_wait_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Runs with a known queue wait',
    users AggregateFunction(uniq, String) COMMENT 'Distinct users with a session, message or run: uniqMerge(users)',
    active_users AggregateFunction(uniq, String) COMMENT 'Distinct users with a run: uniqMerge(active_users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, model)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256
COMMENT 'Daily aggregates by model only (the system view totals, models and series)';

-- Materialized views: the same three sources as 0003, one view per source and target.

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
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY bucket
COMMENT 'Feeds metrics_system_hourly with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_system_hourly TO ${db}.metrics_system_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
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
    uniqState(user_id) AS users,
    uniqState(user_id) AS active_users
FROM ${db}.usage_raw AS u
GROUP BY bucket, model
COMMENT 'Feeds metrics_system_hourly with finished runs (tokens, cost, latency, errors) from usage_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_system_daily TO ${db}.metrics_system_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY bucket
COMMENT 'Feeds metrics_system_daily with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_system_daily TO ${db}.metrics_system_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
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
    uniqState(user_id) AS users,
    uniqState(user_id) AS active_users
FROM ${db}.usage_raw AS u
GROUP BY bucket, model
COMMENT 'Feeds metrics_system_daily with finished runs (tokens, cost, latency, errors) from usage_raw';

-- Backfill of an existing database. The service runs migrations before it starts consuming,
-- so nothing is inserted while this runs. Idempotent: each rollup is emptied and refilled, so
-- a migration interrupted half-way is simply run again (insert_deduplicate = 0: the refill must
-- not be dropped as a duplicate of a block an interrupted run already inserted).
-- Counts, sums, errors and distinct users come from metrics_hourly / metrics_daily (they keep
-- more history than the raw tables; the reservoir quantile states are copied as they are into
-- metrics_user_*). The t-digest states of metrics_agent_* / metrics_system_* can only be built
-- from values: they come from usage_raw, so buckets older than the raw retention get counts
-- but no quantiles (p50/p95/p99 = null there; the averages stay exact).


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
    uniqMergeState(users),
    uniqMergeStateIf(users, runs > 0)
FROM ${db}.metrics_hourly
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
    uniqMergeState(users),
    uniqMergeStateIf(users, runs > 0)
FROM ${db}.metrics_daily
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

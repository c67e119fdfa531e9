-- Aggregates by bucket x agent x user x model, fed by the materialized views of 0003.
--
-- Counters and sums are SimpleAggregateFunction columns (merged by sum/sumMap), quantiles and
-- distinct users are *State columns: read them with sum(), sumMap(), quantilesMerge(...)() and
-- uniqMerge() and GROUP BY what you need (rows of one key may not be merged yet).
-- quantiles() keeps a reservoir of 8192 values per state: exact below that, sampled above.
--
-- non_replicated_deduplication_window on MV targets too: an insert retried with the same
-- insert_deduplication_token (and deduplicate_blocks_in_dependent_materialized_views = 1)
-- is dropped here as well, so a retry never counts twice in an aggregate.
-- Retention (TTL on bucket) is applied on start from METRICS_HOURLY/DAILY_RETENTION_DAYS.

CREATE TABLE IF NOT EXISTS ${db}.metrics_hourly
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
    users AggregateFunction(uniq, String) COMMENT 'Distinct users state: uniqMerge(users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (agent_id, bucket, user_id, model)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Hourly aggregates by agent, user and model (sessions, messages, runs, tokens, cost, latency)';

CREATE TABLE IF NOT EXISTS ${db}.metrics_daily
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
    users AggregateFunction(uniq, String) COMMENT 'Distinct users state: uniqMerge(users)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (agent_id, bucket, user_id, model)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Daily aggregates by agent, user and model (sessions, messages, runs, tokens, cost, latency)';

-- Materialized views: every insert into a raw table is aggregated into the hourly and daily
-- tables of 0002. A view sees exactly the rows of each insert, so the writer's duplicate
-- filter on the raw tables is what keeps the aggregates exact.
-- Columns a view does not produce get their defaults (0, empty map, empty state).

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_hourly TO ${db}.metrics_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    user_id,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY bucket, agent_id, user_id
COMMENT 'Feeds metrics_hourly with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_sessions_daily TO ${db}.metrics_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    user_id,
    '' AS model,
    toUInt64(countIf(event_type = 'session.created.v1')) AS sessions,
    uniqStateIf(user_id, event_type = 'session.created.v1') AS users
FROM ${db}.sessions_raw
GROUP BY bucket, agent_id, user_id
COMMENT 'Feeds metrics_daily with SessionCreated events from sessions_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_hourly TO ${db}.metrics_hourly
AS SELECT
    toStartOfHour(occurred_at) AS bucket,
    agent_id,
    user_id,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
FROM ${db}.messages_raw
GROUP BY bucket, agent_id, user_id, model
COMMENT 'Feeds metrics_hourly with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_messages_daily TO ${db}.metrics_daily
AS SELECT
    toStartOfDay(occurred_at) AS bucket,
    agent_id,
    user_id,
    model,
    toUInt64(countIf(role = 'user')) AS user_messages,
    toUInt64(countIf(role = 'assistant')) AS assistant_messages,
    uniqState(user_id) AS users
FROM ${db}.messages_raw
GROUP BY bucket, agent_id, user_id, model
COMMENT 'Feeds metrics_daily with user and assistant messages from messages_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_hourly TO ${db}.metrics_hourly
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
GROUP BY bucket, agent_id, user_id, model
COMMENT 'Feeds metrics_hourly with finished runs (tokens, cost, latency, errors) from usage_raw';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.mv_usage_daily TO ${db}.metrics_daily
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
GROUP BY bucket, agent_id, user_id, model
COMMENT 'Feeds metrics_daily with finished runs (tokens, cost, latency, errors) from usage_raw';

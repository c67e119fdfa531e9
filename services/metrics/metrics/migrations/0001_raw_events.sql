-- Raw event tables: one row per Kafka event the metrics service uses.
--
-- Keyed by event_id (ReplacingMergeTree ORDER BY event_id): the writer looks up every
-- incoming event_id here before inserting, so a redelivered event is never inserted (and
-- never reaches the aggregates) twice. A copy that slipped through anyway collapses on merge.
-- Duplicates of one event share occurred_at, hence the same partition, so they do collapse.
--
-- non_replicated_deduplication_window: lets insert_deduplication_token drop a retried insert
-- (without it ClickHouse silently ignores the token).
-- Retention (TTL on ingested_at) is applied on start from METRICS_RAW_RETENTION_DAYS.

CREATE TABLE IF NOT EXISTS ${db}.sessions_raw
(
    event_id String COMMENT 'Envelope event_id: unique per event, the deduplication key',
    event_type LowCardinality(String) COMMENT 'session.created.v1 or session.deleted.v1',
    occurred_at DateTime64(3, 'UTC') COMMENT 'When the session was created or deleted (UTC)',
    ingested_at DateTime('UTC') DEFAULT now() COMMENT 'When this row was inserted; retention counts from here',
    correlation_id String COMMENT 'Ties together everything one client request caused',
    user_id String COMMENT 'Owner of the session',
    agent_id String COMMENT 'Agent of the session (empty if unknown)',
    session_id String COMMENT 'Session id',
    agent_name String COMMENT 'Human-readable agent name at creation (empty for deletions)',
    title String COMMENT 'Session title; empty unless METRICS_STORE_MESSAGE_CONTENT=true'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'SessionCreated and SessionDeleted events (topic agentos.sessions.v1), one row per event_id';

CREATE TABLE IF NOT EXISTS ${db}.messages_raw
(
    event_id String COMMENT 'Envelope event_id: unique per event, the deduplication key',
    event_type LowCardinality(String) COMMENT 'run.requested.v1 (user message) or run.completed.v1 (assistant message)',
    occurred_at DateTime64(3, 'UTC') COMMENT 'When the message was sent or produced (UTC)',
    ingested_at DateTime('UTC') DEFAULT now() COMMENT 'When this row was inserted; retention counts from here',
    correlation_id String COMMENT 'Ties together everything one client request caused',
    user_id String COMMENT 'User of the conversation',
    agent_id String COMMENT 'Agent of the conversation',
    session_id String COMMENT 'Session the message belongs to',
    run_id String COMMENT 'Run that the message started (user) or produced (assistant)',
    message_id String COMMENT 'Gateway message id of a user message (empty for assistant messages)',
    role LowCardinality(String) COMMENT 'user or assistant',
    model LowCardinality(String) COMMENT 'provider:model (the agent snapshot model for user messages)',
    agent_version UInt32 COMMENT 'Revision of the agent definition',
    content_chars UInt32 COMMENT 'Length of the message text in characters (always kept)',
    content String COMMENT 'Message text; empty unless METRICS_STORE_MESSAGE_CONTENT=true',
    input_tokens UInt64 COMMENT 'Assistant messages: prompt tokens of the run (0 for user messages)',
    output_tokens UInt64 COMMENT 'Assistant messages: completion tokens of the run',
    total_tokens UInt64 COMMENT 'Assistant messages: total tokens of the run',
    cost_usd Nullable(Float64) COMMENT 'Assistant messages: cost of the run in USD; NULL = unknown price',
    latency_ms Float64 COMMENT 'Assistant messages: run duration in milliseconds',
    ttft_ms Nullable(Float64) COMMENT 'Assistant messages: time to first token in milliseconds'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Conversation messages: RunRequested = one user message, RunCompleted = one assistant message';

CREATE TABLE IF NOT EXISTS ${db}.usage_raw
(
    event_id String COMMENT 'Envelope event_id: unique per event, the deduplication key',
    event_type LowCardinality(String) COMMENT 'usage.recorded.v1',
    occurred_at DateTime64(3, 'UTC') COMMENT 'When the run finished (UTC)',
    ingested_at DateTime('UTC') DEFAULT now() COMMENT 'When this row was inserted; retention counts from here',
    correlation_id String COMMENT 'Ties together everything one client request caused',
    user_id String COMMENT 'User on whose behalf the run executed',
    agent_id String COMMENT 'Agent that ran',
    session_id String COMMENT 'Session of the run',
    run_id String COMMENT 'Run id',
    agent_version UInt32 COMMENT 'Revision of the agent definition',
    provider LowCardinality(String) COMMENT 'Model provider (openai, anthropic, ollama, scripted, ...)',
    model LowCardinality(String) COMMENT 'provider:model',
    status LowCardinality(String) COMMENT 'completed, failed or cancelled',
    error_type LowCardinality(String) COMMENT 'Why a failed run failed (empty otherwise)',
    input_tokens UInt64 COMMENT 'Prompt tokens',
    output_tokens UInt64 COMMENT 'Completion tokens',
    total_tokens UInt64 COMMENT 'Total tokens',
    cached_tokens UInt64 COMMENT 'Prompt tokens served from the provider cache',
    reasoning_tokens UInt64 COMMENT 'Reasoning tokens',
    cost_usd Nullable(Float64) COMMENT 'Cost in USD from the price table; NULL = no price known (never guessed)',
    price_version LowCardinality(String) COMMENT 'Version of the price table used (empty if none)',
    latency_ms Float64 COMMENT 'Run duration in milliseconds',
    ttft_ms Nullable(Float64) COMMENT 'Time to first token in milliseconds (NULL if no token was produced)',
    queue_wait_ms Nullable(Float64) COMMENT 'Time between the request and the start of the run in milliseconds',
    tool_calls UInt32 COMMENT 'Tool calls made during the run',
    model_turns UInt32 COMMENT 'Model invocations during the run'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'UsageRecorded events: one row per finished run (completed, failed or cancelled)';

CREATE TABLE IF NOT EXISTS ${db}.run_errors_raw
(
    event_id String COMMENT 'Envelope event_id: unique per event, the deduplication key',
    event_type LowCardinality(String) COMMENT 'run.failed.v1 or run.cancelled.v1',
    occurred_at DateTime64(3, 'UTC') COMMENT 'When the run failed or was cancelled (UTC)',
    ingested_at DateTime('UTC') DEFAULT now() COMMENT 'When this row was inserted; retention counts from here',
    correlation_id String COMMENT 'Ties together everything one client request caused',
    user_id String COMMENT 'User on whose behalf the run executed',
    agent_id String COMMENT 'Agent that ran',
    session_id String COMMENT 'Session of the run',
    run_id String COMMENT 'Run id',
    agent_version UInt32 COMMENT 'Revision of the agent definition (0 for cancellations)',
    outcome LowCardinality(String) COMMENT 'failed or cancelled',
    error_type LowCardinality(String) COMMENT 'agent_error, provider_not_configured, deadline_exceeded, ... (empty for cancellations)',
    error_message String COMMENT 'Error text, cut to METRICS_ERROR_MESSAGE_MAX_CHARS',
    reason String COMMENT 'Cancellation reason (empty for failures)'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'RunFailed and RunCancelled events: the error log of agent runs';

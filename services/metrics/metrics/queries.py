"""The query API's SQL: agent, user and system metrics from the hourly/daily aggregates, and
the read-only SQL endpoint for analysts.

Metrics queries never read the raw tables, and each picks the aggregate keyed for it
(migration 0004, laid out for these reads by 0006), so its cost grows with the rows of *its* key
in the window, not with events:

| view                          | table (``_hourly`` / ``_daily``)  | key                               |
|-------------------------------|-----------------------------------|-----------------------------------|
| agent, no user filter         | ``metrics_agent_*``               | agent_id, bucket, model           |
| agent restricted to a user    | ``metrics_user_*``                | user_id, bucket, agent_id, model  |
| user                          | ``metrics_user_*``                | user_id, bucket, agent_id, model  |
| system (totals/models/series) | ``metrics_system_*``              | bucket, model                     |
| system top agents             | ``metrics_agent_*``               | agent_id, bucket, model           |

One statement per API call: totals, series and the breakdowns are the GROUPING SETS of one
read of the table (plus a ``UNION ALL`` branch for the system view's top agents), tagged by
``k`` and shaped here. Counts, sums and cost are exact everywhere;
p50/p95/p99 come from t-digests in ``metrics_agent_*`` / ``metrics_system_*`` (approximate)
and from reservoir states (exact up to 8192 values) in ``metrics_user_*``; distinct users are
``uniq`` states (exact up to 65536) except in ``metrics_system_*``: ``uniqCombined(12)``
sketches (exact up to 256, ~1 % above), because merging thousands-of-users sets per (day,
model) was most of the system view's time.

Window semantics: a window is ``[from, to)``; ``from`` is floored to the start of its bucket
(hour or day, UTC) and every bucket that starts before ``to`` is included, so totals always
equal the sum of the series. ``days=N`` (default 30) means ``from = to - N days`` with
``to`` = now unless given; an explicit ``from`` wins over ``days``.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal
from uuid import UUID

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from metrics.migrate import quote_database
from metrics.rows import EARLIEST, LATEST

Bucket = Literal["day", "hour"]
BUCKET_STEP: dict[str, timedelta] = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
BUCKET_TABLE: dict[str, str] = {"day": "metrics_daily", "hour": "metrics_hourly"}
GRAIN: dict[str, str] = {"day": "daily", "hour": "hourly"}


class InvalidQuery(ValueError):
    """Bad parameters of a metrics query (answered with 422)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidSQL(ValueError):
    """Rejected or failed analyst SQL (answered with 400)."""


# -- windows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime  # floored to the bucket
    end: datetime  # exclusive
    bucket: Bucket
    days: float
    relative: bool = False  # "the last N days": moves with the clock

    def bucket_starts(self) -> list[datetime]:
        step = BUCKET_STEP[self.bucket]
        out, current = [], self.start
        while current < self.end:
            out.append(current)
            current += step
        return out

    def describe(self) -> dict[str, Any]:
        return {"days": self.days, "from": iso(self.start), "to": iso(self.end), "bucket": self.bucket}


def floor_to_bucket(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def resolve_window(
    *,
    days: int | None,
    from_: datetime | None,
    to: datetime | None,
    bucket: str,
    now: datetime | None = None,
    max_days: int = 3650,
    max_points: int = 4400,
    default_days: int = 30,
) -> Window:
    if bucket not in BUCKET_STEP:
        raise InvalidQuery("bucket must be 'day' or 'hour'", "bucket")
    for name, value in (("from", from_), ("to", to)):
        if value is not None and not EARLIEST <= _utc(value) <= LATEST:
            raise InvalidQuery(f"{name} must be between {EARLIEST.date()} and {LATEST.date()}", name)
    # `days` is validated even when `from` overrides it: the gateway always forwards it.
    if days is not None and not 1 <= days <= max_days:
        raise InvalidQuery(f"days must be between 1 and {max_days}", "days")
    end = _utc(to) if to is not None else (now or datetime.now(UTC))
    start = _utc(from_) if from_ is not None else end - timedelta(days=days or default_days)
    if start >= end:
        raise InvalidQuery("from must be before to", "from")
    span_days = (end - start) / timedelta(days=1)
    if span_days > max_days:
        raise InvalidQuery(f"the window may cover at most {max_days} days", "from")
    floored = floor_to_bucket(start, bucket)
    points = math.ceil((end - floored) / BUCKET_STEP[bucket])
    if points > max_points:
        raise InvalidQuery(
            f"{points} {bucket} buckets requested, at most {max_points}: use bucket=day or a shorter window",
            "bucket",
        )
    relative = from_ is None and to is None
    shown_days: float = (days or default_days) if relative else round(span_days, 4)
    return Window(start=floored, end=end, bucket=bucket, days=shown_days, relative=relative)  # type: ignore[arg-type]


# -- counters -------------------------------------------------------------------------------------

# Aliases carry a c_ prefix: ClickHouse aliases are visible in the whole query and must not
# shadow the columns that the aggregate functions read (e.g. `runs` in uniqMergeIf).
# _COUNTERS_SQL: per-user tables (metrics_hourly/daily, metrics_user_*): reservoir quantiles,
# active users = users of the rows with runs. _ROLLUP_COUNTERS_SQL: metrics_agent_* /
# metrics_system_* (no user_id): t-digest quantiles and an active_users state of their own;
# metrics_system_* keeps its distinct users as uniqCombined(12) sketches (migration 0006).
_COUNTERS_SQL = """
    sum(sessions) AS c_sessions,
    sum(user_messages) AS c_user_messages,
    sum(assistant_messages) AS c_assistant_messages,
    sum(runs) AS c_runs,
    sum(completed_runs) AS c_completed_runs,
    sum(failed_runs) AS c_failed_runs,
    sum(cancelled_runs) AS c_cancelled_runs,
    sum(input_tokens) AS c_input_tokens,
    sum(output_tokens) AS c_output_tokens,
    sum(total_tokens) AS c_total_tokens,
    sum(cached_tokens) AS c_cached_tokens,
    sum(reasoning_tokens) AS c_reasoning_tokens,
    sum(cost_usd) AS c_cost,
    sum(priced_runs) AS c_priced_runs,
    sum(latency_ms_sum) AS c_latency_ms_sum,
    quantilesMerge(0.5, 0.95, 0.99)(latency_ms_quantiles) AS c_latency_q,
    sum(ttft_ms_sum) AS c_ttft_ms_sum,
    sum(ttft_count) AS c_ttft_count,
    quantilesMerge(0.5, 0.95, 0.99)(ttft_ms_quantiles) AS c_ttft_q,
    sum(queue_wait_ms_sum) AS c_queue_wait_ms_sum,
    sum(queue_wait_count) AS c_queue_wait_count,
    uniqMerge(users) AS c_unique_users,
    uniqMergeIf(users, runs > 0) AS c_active_users,
    sumMap(errors_by_type) AS c_errors_by_type"""

_ROLLUP_COUNTERS_SQL = (
    _COUNTERS_SQL.replace("quantilesMerge(", "quantilesTDigestMerge(")
    .replace("uniqMergeIf(users, runs > 0)", "uniqMerge(active_users)")
)
_SYSTEM_COUNTERS_SQL = _ROLLUP_COUNTERS_SQL.replace("uniqMerge(", "uniqCombinedMerge(12)(")
#: The counters of each rollup family (``_Part.family``).
FAMILY_COUNTERS_SQL = {"user": _COUNTERS_SQL, "agent": _ROLLUP_COUNTERS_SQL, "system": _SYSTEM_COUNTERS_SQL}

#: The counters of every totals / group / series entry, in response order.
COUNTER_FIELDS = (
    "sessions", "messages", "user_messages", "assistant_messages", "runs", "completed_runs",
    "errors", "cancelled_runs", "success_rate", "error_rate", "input_tokens", "output_tokens",
    "total_tokens", "cached_tokens", "reasoning_tokens", "cost", "priced_runs", "avg_latency_ms",
    "p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "avg_ttft_ms", "p50_ttft_ms",
    "p95_ttft_ms", "avg_queue_wait_ms", "unique_users", "active_users",
)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _finite(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def counters(row: dict[str, Any]) -> dict[str, Any]:
    """Turn one aggregate row (c_* columns) into the public counters."""
    runs = int(row["c_runs"])
    latency_q = row["c_latency_q"] if runs else [None, None, None]
    ttft_q = row["c_ttft_q"] if row["c_ttft_count"] else [None, None, None]
    return {
        "sessions": int(row["c_sessions"]),
        "messages": int(row["c_user_messages"]) + int(row["c_assistant_messages"]),
        "user_messages": int(row["c_user_messages"]),
        "assistant_messages": int(row["c_assistant_messages"]),
        "runs": runs,
        "completed_runs": int(row["c_completed_runs"]),
        "errors": int(row["c_failed_runs"]),
        "cancelled_runs": int(row["c_cancelled_runs"]),
        "success_rate": _ratio(row["c_completed_runs"], runs),
        "error_rate": _ratio(row["c_failed_runs"], runs),
        "input_tokens": int(row["c_input_tokens"]),
        "output_tokens": int(row["c_output_tokens"]),
        "total_tokens": int(row["c_total_tokens"]),
        "cached_tokens": int(row["c_cached_tokens"]),
        "reasoning_tokens": int(row["c_reasoning_tokens"]),
        "cost": float(row["c_cost"]),
        "priced_runs": int(row["c_priced_runs"]),
        "avg_latency_ms": _ratio(row["c_latency_ms_sum"], runs),
        "p50_latency_ms": _finite(latency_q[0]),
        "p95_latency_ms": _finite(latency_q[1]),
        "p99_latency_ms": _finite(latency_q[2]),
        "avg_ttft_ms": _ratio(row["c_ttft_ms_sum"], row["c_ttft_count"]),
        "p50_ttft_ms": _finite(ttft_q[0]),
        "p95_ttft_ms": _finite(ttft_q[1]),
        "avg_queue_wait_ms": _ratio(row["c_queue_wait_ms_sum"], row["c_queue_wait_count"]),
        "unique_users": int(row["c_unique_users"]),
        "active_users": int(row["c_active_users"]),
    }


def _errors_by_type(row: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(row["c_errors_by_type"].items()) if v}


# -- cache -----------------------------------------------------------------------------------------


class TTLCache:
    """Answers reused for ``ttl`` seconds. Dashboards poll and several widgets ask the same
    question at once; the embedded engine runs one statement at a time (shared with the
    writer), so identical questions within a few seconds are answered once. 5 s keeps the
    added staleness of the same order as the ingestion delay people already accept."""

    def __init__(self, ttl: float, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        if self._ttl <= 0:
            return None
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return hit[1]

    def put(self, key: Hashable, value: Any) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + self._ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# -- metrics queries ------------------------------------------------------------------------------


class MetricsQueries:
    def __init__(self, client: Client, database: str, *, cache: TTLCache | None = None) -> None:
        self._client = client
        self._db = quote_database(database)
        self.cache = cache or TTLCache(0)

    async def agent(self, agent_id: str, window: Window, *, user_id: str | None = None) -> dict[str, Any]:
        key = ("agent", agent_id, user_id, _window_key(window))
        return await self._cached(key, self._agent, agent_id, window, user_id)

    async def user(self, user_id: str, window: Window) -> dict[str, Any]:
        return await self._cached(("user", user_id, _window_key(window)), self._user, user_id, window)

    async def system(self, window: Window, *, top: int = 10) -> dict[str, Any]:
        return await self._cached(("system", top, _window_key(window)), self._system, window, top)

    async def _cached(self, key: Hashable, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        result = await asyncio.to_thread(fn, *args)
        self.cache.put(key, result)
        return result

    # -- blocking bodies --------------------------------------------------------------------

    def _agent(self, agent_id: str, window: Window, user_id: str | None) -> dict[str, Any]:
        where, params = self._where(window, agent_id=agent_id, user_id=user_id)
        family = "agent" if user_id is None else "user"
        got = self._report(window, [_Part(family, where, (("model", "model", None),))], params)
        return {
            "agent_id": agent_id,
            "user_id": user_id,
            **window.describe(),
            "totals": counters(got.totals),
            "errors_by_type": _errors_by_type(got.totals),
            "by_model": got.groups["model"],
            "series": got.series,
        }

    def _user(self, user_id: str, window: Window) -> dict[str, Any]:
        where, params = self._where(window, user_id=user_id)
        part = _Part("user", where, (("agent_id", "agent_id", None), ("model", "model", None)))
        got = self._report(window, [part], params)
        return {
            "user_id": user_id,
            **window.describe(),
            "totals": counters(got.totals),
            "errors_by_type": _errors_by_type(got.totals),
            "by_agent": got.groups["agent_id"],
            "by_model": got.groups["model"],
            "series": got.series,
        }

    def _system(self, window: Window, top: int) -> dict[str, Any]:
        where, params = self._where(window)
        parts = [
            _Part("system", where, (("model", "model", None),)),
            _Part("agent", where, (("top", "agent_id", int(top)),), totals=False),
        ]
        got = self._report(window, parts, params)
        return {
            **window.describe(),
            "totals": counters(got.totals),
            "errors_by_type": _errors_by_type(got.totals),
            "top_agents": got.groups["top"],
            "by_model": got.groups["model"],
            "series": got.series,
        }

    def _where(self, window: Window, *, agent_id: str | None = None, user_id: str | None = None):
        clauses = ["bucket >= {start:DateTime('UTC')}", "bucket < {end:DateTime('UTC')}"]
        params: dict[str, Any] = {"start": _ch_time(window.start), "end": _ch_time(window.end)}
        if agent_id is not None:
            clauses.append("agent_id = {agent_id:String}")
            params["agent_id"] = agent_id
        if user_id is not None:
            clauses.append("user_id = {user_id:String}")
            params["user_id"] = user_id
        return " AND ".join(clauses), params

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self._client.query(sql, parameters=params).named_results())

    def _table(self, window: Window, family: str = "") -> str:
        if not family:
            return f"{self._db}.{BUCKET_TABLE[window.bucket]}"
        return f"{self._db}.metrics_{family}_{GRAIN[window.bucket]}"

    def _report(self, window: Window, parts: list[_Part], params: dict[str, Any]) -> _Report:
        """Totals, series and the groups of ``parts`` in one statement: per part one
        GROUPING SETS branch (totals, series, unlimited groups) and one branch per top-N group,
        joined by UNION ALL; rows are tagged by ``k``. The part with ``totals`` gives totals
        and series."""
        branches: list[str] = []
        zero = "toDateTime(0, 'UTC')"
        for part in parts:
            table = self._table(window, part.family)
            cols = FAMILY_COUNTERS_SQL[part.family]
            # One read of the table for totals, series and the unlimited groups: GROUPING SETS.
            # grouping(x) = 0 <=> x is a key of the row's set (standard SQL semantics, forced
            # below so a server default cannot flip it).
            sets = ["()", "(bucket)"] if part.totals else []
            keyed = [(name, column) for name, column, limit in part.groups if limit is None]
            sets += [f"({column})" for _, column in keyed]
            if sets:
                kind = ", ".join(
                    ["grouping(bucket) = 0, 's'"] + [f"grouping({c}) = 0, '{n}'" for n, c in keyed] + ["'t'"]
                )
                label = ", ".join([f"grouping({c}) = 0, toString({c})" for _, c in keyed] + ["''"])
                branches.append(
                    f"SELECT multiIf({kind}) AS k, multiIf({label}) AS g, "
                    f"if(grouping(bucket) = 0, bucket, {zero}) AS b, {cols} FROM {table} WHERE {part.where} "
                    f"GROUP BY GROUPING SETS ({', '.join(sets)})"
                )
            for name, column, limit in part.groups:
                if limit is None:
                    continue
                # Rank on the exact counters first; quantiles are merged for the top only.
                only = (
                    f" AND {column} IN (SELECT {column} FROM {table} WHERE {part.where} "
                    f"GROUP BY {column} ORDER BY sum(runs) DESC, "
                    f"sum(user_messages) + sum(assistant_messages) DESC, sum(sessions) DESC, "
                    f"{column} LIMIT {int(limit)})"
                )
                branches.append(
                    f"SELECT '{name}' AS k, toString({column}) AS g, {zero} AS b, {cols} FROM {table} "
                    f"WHERE {part.where}{only} GROUP BY g"
                )
        sql = "\nUNION ALL\n".join(branches) + "\nSETTINGS force_grouping_standard_compatibility = 1"
        rows = self._rows(sql, params)
        columns = {name: column for part in parts for name, column, _ in part.groups}
        totals: dict[str, Any] = dict(_EMPTY_ROW)
        found: dict[datetime, dict[str, Any]] = {}
        grouped: dict[str, list[dict[str, Any]]] = {
            name: [] for part in parts for name, _, _ in part.groups
        }
        for row in rows:
            kind = row["k"]
            if kind == "t":
                totals = row
            elif kind == "s":
                found[_utc(row["b"])] = row
            elif not (columns[kind] == "model" and row["g"] == ""):
                # Sessions carry no model: the '' model group would only hold them.
                grouped[kind].append(row)
        groups = {
            name: [
                {columns[name]: row["g"], **counters(row), "errors_by_type": _errors_by_type(row)}
                for row in sorted(members, key=_group_order)
            ]
            for name, members in grouped.items()
        }
        series = [
            {"bucket_start": iso(start), **counters(found.get(start, _EMPTY_ROW))}
            for start in window.bucket_starts()
        ]
        return _Report(totals=totals, groups=groups, series=series)


@dataclass(frozen=True)
class _Part:
    """One table's share of a report: ``family`` of ``_table``; groups are (name in the
    answer, column, top-N limit or None)."""

    family: str
    where: str
    groups: tuple[tuple[str, str, int | None], ...]
    totals: bool = True


@dataclass(frozen=True)
class _Report:
    totals: dict[str, Any]
    groups: dict[str, list[dict[str, Any]]]
    series: list[dict[str, Any]]


def _group_order(row: dict[str, Any]) -> tuple[Any, ...]:
    # Same order as ORDER BY c_runs DESC, messages DESC, c_sessions DESC, g (bytewise).
    return (
        -int(row["c_runs"]),
        -(int(row["c_user_messages"]) + int(row["c_assistant_messages"])),
        -int(row["c_sessions"]),
        str(row["g"]).encode(),
    )


_EMPTY_ROW: dict[str, Any] = {
    "c_sessions": 0, "c_user_messages": 0, "c_assistant_messages": 0, "c_runs": 0,
    "c_completed_runs": 0, "c_failed_runs": 0, "c_cancelled_runs": 0, "c_input_tokens": 0,
    "c_output_tokens": 0, "c_total_tokens": 0, "c_cached_tokens": 0, "c_reasoning_tokens": 0,
    "c_cost": 0.0, "c_priced_runs": 0, "c_latency_ms_sum": 0.0, "c_latency_q": [None] * 3,
    "c_ttft_ms_sum": 0.0, "c_ttft_count": 0, "c_ttft_q": [None] * 3, "c_queue_wait_ms_sum": 0.0,
    "c_queue_wait_count": 0, "c_unique_users": 0, "c_active_users": 0, "c_errors_by_type": {},
}


def _window_key(window: Window) -> tuple[Any, ...]:
    # days=N windows move with the clock: within the cache TTL they are the same question.
    if window.relative:
        return ("days", window.days, window.bucket)
    return ("range", window.start, window.end, window.bucket)


# -- analyst SQL ------------------------------------------------------------------------------------

READ_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "EXPLAIN", "EXISTS")
_QUOTED = re.compile(r"'(?:\\.|''|[^'\\])*'|`(?:\\.|``|[^`\\])*`|\"(?:\\.|\"\"|[^\"\\])*\"")
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)


@dataclass(frozen=True)
class SqlLimits:
    max_execution_time_s: int = 10
    max_result_rows: int = 10_000
    max_query_chars: int = 20_000


class AnalystSQL:
    """``POST /v1/sql``: one read-only statement, under time and row limits.

    ClickHouse itself parses the text (``formatQuerySingleLine``), which rejects multiple
    statements and yields the canonical form without comments; only that canonical statement
    runs, with ``readonly = 1`` (the statement cannot lift it: changing settings is
    forbidden in readonly mode) in a query-level SETTINGS clause. The limits are never sent
    with SET: chdb keeps SET values for the whole connection, and a readonly=1 that leaked
    could not be reset. ``INTO OUTFILE`` is refused (the embedded engine would write a file).
    """

    def __init__(self, client: Client, database: str, limits: SqlLimits) -> None:
        self._client = client
        self._database = database
        self._limits = limits
        self._lock = threading.Lock()

    async def run(self, sql: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._run, sql)

    def canonical(self, sql: str) -> str:
        if not sql.strip():
            raise InvalidSQL("the query is empty")
        if len(sql) > self._limits.max_query_chars:
            raise InvalidSQL(f"the query is longer than {self._limits.max_query_chars} characters")
        try:
            text = self._client.query(
                "SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}
            ).result_rows[0][0]
        except ClickHouseError as exc:
            raise InvalidSQL(_clickhouse_message(exc)) from exc
        bare = _QUOTED.sub("''", text)
        first = bare.split(None, 1)[0].upper() if bare.strip() else ""
        if first not in READ_STATEMENTS:
            raise InvalidSQL(f"only read statements are allowed ({', '.join(READ_STATEMENTS)})")
        if _OUTFILE.search(bare):
            raise InvalidSQL("INTO OUTFILE is not allowed")
        if ";" in bare or "$" in bare:
            raise InvalidSQL("only one statement is allowed")
        return text

    def _run(self, sql: str) -> dict[str, Any]:
        text = self.canonical(sql)
        limits = (
            f"readonly = 1, max_execution_time = {int(self._limits.max_execution_time_s)}, "
            f"max_result_rows = {int(self._limits.max_result_rows)}, result_overflow_mode = 'throw'"
        )
        started = time.perf_counter()
        try:
            # The service database is the default, so analysts can write `FROM usage_raw`.
            with self._lock:
                previous, self._client.database = self._client.database, self._database
                try:
                    result = self._client.query(f"{text}\nSETTINGS {limits}")
                    rows = result.result_rows
                finally:
                    self._client.database = previous
        except ClickHouseError as exc:
            raise InvalidSQL(_clickhouse_message(exc)) from exc
        return {
            "query": text,
            "columns": [
                {"name": name, "type": getattr(ch_type, "name", str(ch_type))}
                for name, ch_type in zip(result.column_names, result.column_types, strict=True)
            ],
            "rows": [[jsonable(v) for v in row] for row in rows],
            "row_count": len(rows),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }


def _clickhouse_message(exc: Exception) -> str:
    text = str(exc).strip()
    # chdb repeats the message on several lines; the first one says it all.
    return text.splitlines()[0][:2000] if text else exc.__class__.__name__


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID | IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return str(value)


# -- time helpers -----------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ch_time(value: datetime) -> str:
    # DateTime has second precision: round a fractional end up so `bucket < end` keeps the
    # bucket that starts within that second.
    value = _utc(value)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime) -> str:
    value = _utc(value)
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")

"""rows.py: the pure event -> raw-table-row mapping, from the contract examples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from metrics.rows import COLUMNS, invalid_reason, is_used, rows_by_table, rows_for

from shared.events import decode

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "events" / "examples"
T = datetime(2026, 1, 1, 12, tzinfo=UTC)


def example(event_type: str):
    return decode((EXAMPLES / f"{event_type}.json").read_bytes())


def only_row(event, **kwargs):
    rows = rows_for(event, **kwargs)
    assert len(rows) == 1
    row = rows[0]
    assert len(row.values) == len(COLUMNS[row.table])
    return row.table, row.as_dict()


ENVELOPE = {"occurred_at": T, "correlation_id": "corr_7f3a", "user_id": "1", "agent_id": "assistant",
            "session_id": "sess_4b1c"}


class TestEachContractExample:
    def test_session_created_is_a_session_row_without_its_title_by_default(self):
        table, row = only_row(example("session.created.v1"))
        assert table == "sessions_raw"
        assert row == {**ENVELOPE, "event_id": "e1", "event_type": "session.created.v1",
                       "agent_name": "Assistant", "title": ""}

    def test_session_created_keeps_its_title_when_content_is_stored(self):
        _, row = only_row(example("session.created.v1"), store_content=True)
        assert row["title"] == "New Chat"

    def test_session_deleted_is_recorded_but_not_as_a_creation(self):
        table, row = only_row(example("session.deleted.v1"))
        assert table == "sessions_raw"
        assert row["event_type"] == "session.deleted.v1" and row["agent_name"] == ""

    def test_run_requested_is_one_user_message_with_its_length_but_not_its_text(self):
        table, row = only_row(example("run.requested.v1"))
        assert table == "messages_raw"
        assert row == {
            **ENVELOPE, "event_id": "e3", "event_type": "run.requested.v1", "run_id": "run_9d2e",
            "message_id": "msg_1", "role": "user", "model": "scripted:assistant", "agent_version": 3,
            "content_chars": len("What is 6 * 7?"), "content": "", "input_tokens": 0,
            "output_tokens": 0, "total_tokens": 0, "cost_usd": None, "latency_ms": 0.0, "ttft_ms": None,
        }

    def test_run_requested_keeps_the_text_when_content_is_stored(self):
        _, row = only_row(example("run.requested.v1"), store_content=True)
        assert row["content"] == "What is 6 * 7?"

    def test_run_completed_is_one_assistant_message_with_its_usage(self):
        table, row = only_row(example("run.completed.v1"))
        assert table == "messages_raw"
        assert row == {
            **ENVELOPE, "event_id": "e7", "event_type": "run.completed.v1", "run_id": "run_9d2e",
            "message_id": "", "role": "assistant", "model": "scripted:assistant", "agent_version": 3,
            "content_chars": len("6 * 7 = 42"), "content": "", "input_tokens": 42,
            "output_tokens": 12, "total_tokens": 54, "cost_usd": 0.0, "latency_ms": 8.4, "ttft_ms": 3.1,
        }

    def test_usage_recorded_is_one_run_with_tokens_cost_and_timings(self):
        table, row = only_row(example("usage.recorded.v1"))
        assert table == "usage_raw"
        assert row == {
            **ENVELOPE, "event_id": "e10", "event_type": "usage.recorded.v1", "run_id": "run_9d2e",
            "agent_version": 3, "provider": "scripted", "model": "scripted:assistant",
            "status": "completed", "error_type": "", "input_tokens": 42, "output_tokens": 12,
            "total_tokens": 54, "cached_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0,
            "price_version": "2026-11-01", "latency_ms": 8.4, "ttft_ms": 3.1, "queue_wait_ms": 4.2,
            "tool_calls": 1, "model_turns": 2,
        }

    def test_run_failed_goes_to_the_error_log(self):
        table, row = only_row(example("run.failed.v1"))
        assert table == "run_errors_raw"
        assert row["outcome"] == "failed"
        assert row["error_type"] == "provider_not_configured"
        assert row["error_message"].startswith("OPENAI_API_KEY is not set")

    def test_run_failed_error_text_is_cut(self):
        _, row = only_row(example("run.failed.v1"), error_max_chars=10)
        assert row["error_message"] == "OPENAI_API"

    def test_run_cancelled_goes_to_the_error_log_with_its_reason(self):
        table, row = only_row(example("run.cancelled.v1"))
        assert table == "run_errors_raw"
        assert (row["outcome"], row["reason"], row["error_type"]) == ("cancelled", "cancelled by user", "")

    @pytest.mark.parametrize("event_type", ["run.started.v1", "run.delta.v1", "run.cancel.v1"])
    def test_events_metrics_does_not_use_map_to_nothing(self, event_type):
        event = example(event_type)
        assert not is_used(event)
        assert rows_for(event) == []


class TestBatches:
    def test_a_batch_holding_an_event_twice_yields_one_row(self):
        event = example("usage.recorded.v1")
        grouped = rows_by_table([event, example("run.requested.v1"), event])
        assert {t: len(r) for t, r in grouped.items()} == {"usage_raw": 1, "messages_raw": 1}

    def test_mapping_twice_gives_the_same_rows(self):
        events = [example(p.stem) for p in sorted(EXAMPLES.glob("*.json"))]
        assert rows_by_table(events) == rows_by_table(events)


class TestEventsThatCannotBeStored:
    def test_an_occurred_at_outside_the_storable_range_is_refused(self):
        event = example("usage.recorded.v1").model_copy(update={"occurred_at": datetime(2500, 1, 1, tzinfo=UTC)})
        assert "outside" in invalid_reason(event)

    def test_a_nan_latency_is_refused(self):
        event = example("usage.recorded.v1").model_copy(update={"latency_ms": float("nan")})
        assert "latency_ms" in invalid_reason(event)

    def test_a_token_count_beyond_uint64_is_refused(self):
        event = example("usage.recorded.v1").model_copy(update={"input_tokens": 2**70})
        assert "input_tokens" in invalid_reason(event)

    def test_the_examples_are_storable(self):
        for path in EXAMPLES.glob("*.json"):
            assert invalid_reason(decode(path.read_bytes())) is None, path.name

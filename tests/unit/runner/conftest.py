"""Executors with a real agno agent and SQLite database that record what they publish."""

import pytest

from tests.bench.runner_bench import _executor


@pytest.fixture
def no_provider_keys(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
async def recorder(tmp_path, no_provider_keys):
    """``await recorder(name, **settings)`` -> (executor, results); ``executor.published`` lists
    the events in order. Each name gets its own data directory; all are closed at the end."""
    opened = []

    async def make(name: str, **kwargs):
        ex, results = await _executor(str(tmp_path / name), **kwargs)
        ex.published = []

        async def publish(event):
            ex.published.append(event)

        ex.publish = publish
        opened.append(results)
        return ex, results

    yield make
    for results in opened:
        await results.close()

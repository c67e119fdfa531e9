"""The offline model drives real agno agents: tool calls, history, streaming, failures."""

import pytest
from agent_runner.models.scripted import ScriptedModel
from agent_runner.tools.catalogue import calculator
from agno.agent import Agent
from agno.db.sqlite import AsyncSqliteDb
from agno.run.agent import RunContentEvent
from agno.run.base import RunStatus


@pytest.fixture
def db(tmp_path):
    return AsyncSqliteDb(db_file=str(tmp_path / "agno.sqlite"))


def agent(db, **kw):
    return Agent(id="assistant", name="Assistant", model=ScriptedModel(**kw), tools=[calculator], db=db,
                 add_history_to_context=True, num_history_runs=50, telemetry=False)


class TestScriptedModel:
    async def test_arithmetic_question_calls_the_calculator_and_answers_with_its_result(self, db):
        out = await agent(db).arun("What is 6 * 7?", session_id="s1", user_id="u1")
        assert out.status == RunStatus.completed
        assert out.content == "6 * 7 = 42"
        assert [t.tool_name for t in out.tools] == ["calculator"]
        assert out.tools[0].result == "42"
        assert out.metrics.input_tokens > 0 and out.metrics.output_tokens > 0

    async def test_other_messages_are_quoted_with_the_turn_number_from_history(self, db):
        replies = []
        for text in ["first", "second", "third"]:
            out = await agent(db).arun(text, session_id="s1", user_id="u1")
            replies.append(out.content)
        assert replies == ['Turn 1: you said "first".', 'Turn 2: you said "second".', 'Turn 3: you said "third".']
        other = await agent(db).arun("elsewhere", session_id="s2", user_id="u1")
        assert other.content == 'Turn 1: you said "elsewhere".'

    async def test_streaming_yields_the_reply_in_chunks(self, db):
        chunks = [e.content async for e in agent(db).arun("a somewhat longer message to split", session_id="s3",
                                                           user_id="u1", stream=True)
                  if isinstance(e, RunContentEvent) and e.content]
        assert len(chunks) > 1
        assert "".join(chunks) == 'Turn 1: you said "a somewhat longer message to split".'

    async def test_fail_directive_ends_the_run_in_error_without_raising(self, db):
        out = await agent(db).arun("[[fail]] please", session_id="s4", user_id="u1")
        assert out.status == RunStatus.error
        assert "[[fail]]" in out.content

    async def test_token_counts_are_deterministic(self, db):
        a = await agent(db).arun("same words", session_id="s5", user_id="u1")
        b = await agent(db).arun("same words", session_id="s6", user_id="u1")
        assert (a.metrics.input_tokens, a.metrics.output_tokens) == (b.metrics.input_tokens, b.metrics.output_tokens)


class TestCalculator:
    @pytest.mark.parametrize("expr,result", [("6 * 7", "42"), ("(2 + 3) ** 2", "25"), ("10 / 4", "2.5"), ("-3 + 1", "-2")])
    def test_evaluates_arithmetic(self, expr, result):
        assert calculator(expr) == result

    @pytest.mark.parametrize("expr", ["__import__('os').system('id')", "1 / 0", "2 ** 1000000", "a + 1"])
    def test_rejects_anything_else_with_an_error_string(self, expr):
        assert calculator(expr).startswith("error:")


async def test_an_agent_without_the_calculator_answers_without_calling_it(db):
    bare = Agent(id="bare", name="Bare", model=ScriptedModel(), db=db, telemetry=False)
    out = await bare.arun("What is 6 * 7?", session_id="s7", user_id="u1")
    assert out.status == RunStatus.completed
    assert not out.tools
    assert out.content == 'Turn 1: you said "What is 6 * 7?".'

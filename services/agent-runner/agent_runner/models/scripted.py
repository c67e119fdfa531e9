"""An offline, deterministic agno ``Model`` — the default for demo agents and tests.

No LLM provider key exists on a development machine or in CI, yet every flow (tool calls,
history, streaming, usage accounting, failures) has to be exercised end to end through real
agno agents. This model behaves like a tiny assistant:

* an arithmetic question ("What is 6 * 7?") -> it calls the ``calculator`` tool, then answers
  with the tool's result ("6 * 7 = 42");
* anything else -> ``Turn N: you said "<message>".`` where N counts the user messages agno put
  in the context (history from agno's db + this one), so history and ordering are visible;
* directives for failure tests, inside the message: ``[[fail]]`` (a non-retryable provider
  error), ``[[transient]]`` (a retryable one, e.g. a 503), ``[[sleep:MS]]`` (extra latency),
  ``[[loop]]`` (calls a tool forever: exercises the turn cap).

Latency (``latency_ms``, env ``AGENTOS_SCRIPTED_LATENCY_MS``) is spread over the streamed
chunks. Token counts are deterministic: ceil(chars / chars_per_token) of the input messages
and of the reply, reported once per model turn as agno expects.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from agno.exceptions import ModelProviderError
from agno.metrics import MessageMetrics
from agno.models.base import Model
from agno.models.message import Message
from agno.models.response import ModelResponse

# "What is 6 * 7?", "what's (2+3)*4", "calculate 10 / 4"
_ARITHMETIC = re.compile(r"(?:what\s+is|what's|calculate|compute)\s+([-+*/().\d\s^%]+?)\s*\??\s*$", re.I)
_DIRECTIVE = re.compile(r"\[\[(fail|transient|sleep|loop)(?::([^\]]*))?\]\]", re.I)


def _tool_name(tool: object) -> str | None:
    if isinstance(tool, dict):
        return (tool.get("function") or {}).get("name") or tool.get("name")
    return getattr(tool, "name", None)


def _text(message: Message) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, default=str)


@dataclass
class ScriptedModel(Model):
    id: str = "assistant"
    name: str = "Scripted"
    provider: str = "scripted"
    latency_ms: float = 0.0
    chars_per_token: float = 4.0
    # How many chunks a streamed reply is cut into (at most).
    stream_chunks: int = 8

    # -- the script -----------------------------------------------------------------------
    def _tokens(self, text: str) -> int:
        return max(1, math.ceil(len(text) / self.chars_per_token)) if text else 0

    def _plan(self, messages: list[Message], tools: list | None = None) -> tuple[str | None, dict | None, float, str | None]:
        """Returns (reply, tool_call, extra_latency_ms, error_kind) for the next model turn.
        The calculator is only called when the agent has it (``tools`` as agno formats them)."""
        has_calculator = any(_tool_name(t) == "calculator" for t in (tools or []))
        user_messages = [m for m in messages if m.role == "user"]
        last_user = _text(user_messages[-1]) if user_messages else ""
        extra_ms = 0.0
        error = None
        loop = False
        for kind, arg in _DIRECTIVE.findall(last_user):
            kind = kind.lower()
            if kind == "sleep":
                extra_ms += float(arg or 0)
            elif kind == "loop":
                loop = True
            else:
                error = kind
        clean = _DIRECTIVE.sub("", last_user).strip()

        # Tool results since the last user message answer the tool call we made.
        last_user_index = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        tool_results = [m for m in messages[last_user_index + 1 :] if m.role == "tool"]

        if loop and has_calculator:
            call = {"id": f"call_{len(tool_results)}", "type": "function",
                    "function": {"name": "calculator", "arguments": json.dumps({"expression": "1 + 1"})}}
            return None, call, extra_ms, error

        match = _ARITHMETIC.search(clean) if has_calculator else None
        if match and not tool_results:
            expression = " ".join(match.group(1).split())
            call = {"id": "call_0", "type": "function",
                    "function": {"name": "calculator", "arguments": json.dumps({"expression": expression})}}
            return None, call, extra_ms, error
        if match and tool_results:
            expression = " ".join(match.group(1).split())
            return f"{expression} = {_text(tool_results[-1]).strip()}", None, extra_ms, error

        turn = len(user_messages)
        return f'Turn {turn}: you said "{clean}".', None, extra_ms, error

    def _raise(self, error: str) -> None:
        if error == "transient":
            raise ModelProviderError("scripted transient provider error (503)", status_code=503,
                                     model_name=self.name, model_id=self.id)
        raise ModelProviderError("scripted provider failure requested by [[fail]]", status_code=400,
                                 model_name=self.name, model_id=self.id)

    def _usage(self, messages: list[Message], reply: str | None, call: dict | None) -> MessageMetrics:
        input_tokens = sum(self._tokens(_text(m)) for m in messages)
        output_tokens = self._tokens(reply or "") + (self._tokens(json.dumps(call)) if call else 0)
        return MessageMetrics(input_tokens=input_tokens, output_tokens=output_tokens,
                              total_tokens=input_tokens + output_tokens)

    def _response(self, reply: str | None, call: dict | None, usage: MessageMetrics | None) -> ModelResponse:
        response = ModelResponse(role="assistant", content=reply)
        if call is not None:
            response.tool_calls = [call]
        response.response_usage = usage
        return response

    # -- agno's Model interface -------------------------------------------------------------
    def invoke(self, messages: list[Message], assistant_message: Message, **kwargs: Any) -> ModelResponse:
        reply, call, extra_ms, error = self._plan(messages, kwargs.get("tools"))
        assistant_message.metrics.start_timer()
        time.sleep((self.latency_ms + extra_ms) / 1000)
        if error:
            self._raise(error)
        assistant_message.metrics.stop_timer()
        return self._response(reply, call, self._usage(messages, reply, call))

    async def ainvoke(self, messages: list[Message], assistant_message: Message, **kwargs: Any) -> ModelResponse:
        reply, call, extra_ms, error = self._plan(messages, kwargs.get("tools"))
        assistant_message.metrics.start_timer()
        await asyncio.sleep((self.latency_ms + extra_ms) / 1000)
        if error:
            self._raise(error)
        assistant_message.metrics.stop_timer()
        return self._response(reply, call, self._usage(messages, reply, call))

    def _chunks(self, reply: str) -> list[str]:
        words = re.findall(r"\S+\s*", reply) or [reply]
        size = max(1, math.ceil(len(words) / self.stream_chunks))
        return ["".join(words[i : i + size]) for i in range(0, len(words), size)]

    def invoke_stream(self, messages: list[Message], assistant_message: Message, **kwargs: Any) -> Iterator[ModelResponse]:
        reply, call, extra_ms, error = self._plan(messages, kwargs.get("tools"))
        assistant_message.metrics.start_timer()
        if error:
            time.sleep((self.latency_ms + extra_ms) / 1000)
            self._raise(error)
        if call is not None:
            time.sleep((self.latency_ms + extra_ms) / 1000)
            yield self._response(None, call, self._usage(messages, None, call))
        else:
            chunks = self._chunks(reply or "")
            for chunk in chunks:
                time.sleep((self.latency_ms + extra_ms) / 1000 / len(chunks))
                yield self._response(chunk, None, None)
            yield self._response(None, None, self._usage(messages, reply, None))
        assistant_message.metrics.stop_timer()

    async def ainvoke_stream(self, messages: list[Message], assistant_message: Message, **kwargs: Any) -> AsyncIterator[ModelResponse]:
        reply, call, extra_ms, error = self._plan(messages, kwargs.get("tools"))
        assistant_message.metrics.start_timer()
        if error:
            await asyncio.sleep((self.latency_ms + extra_ms) / 1000)
            self._raise(error)
        if call is not None:
            await asyncio.sleep((self.latency_ms + extra_ms) / 1000)
            yield self._response(None, call, self._usage(messages, None, call))
        else:
            chunks = self._chunks(reply or "")
            for chunk in chunks:
                await asyncio.sleep((self.latency_ms + extra_ms) / 1000 / len(chunks))
                yield self._response(chunk, None, None)
            yield self._response(None, None, self._usage(messages, reply, None))
        assistant_message.metrics.stop_timer()

    # The script builds ModelResponse objects itself; these exist because agno requires them.
    def _parse_provider_response(self, response: Any, **kwargs: Any) -> ModelResponse:
        return response if isinstance(response, ModelResponse) else ModelResponse(content=str(response))

    def _parse_provider_response_delta(self, response: Any) -> ModelResponse:
        return response if isinstance(response, ModelResponse) else ModelResponse(content=str(response))

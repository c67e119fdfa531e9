"""``provider:model`` -> an agno ``Model``.

A provider whose key or URL is not configured raises ``ProviderNotConfigured`` naming the
missing setting: the run fails with that message. There is deliberately no fallback to the
scripted model — a silently substituted model would bill and answer as something it is not.
"""

from __future__ import annotations

from typing import Any

from agno.models.base import Model

from agent_runner.models.scripted import ScriptedModel
from agent_runner.settings import RunnerSettings
from shared.catalogue import parse_model_spec


class ProviderNotConfigured(RuntimeError):
    error_type = "provider_not_configured"


_COMMON_OPTIONS = ("temperature", "max_tokens", "top_p")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _COMMON_OPTIONS and v is not None}


def build_model(spec: str, options: dict[str, Any], settings: RunnerSettings) -> Model:
    provider, model_id = parse_model_spec(spec)
    opts = _options(options)
    if provider == "scripted":
        return ScriptedModel(id=model_id, latency_ms=float(options.get("latency_ms", settings.scripted_latency_ms)))
    if provider == "openai":
        if settings.openai_api_key is None:
            raise ProviderNotConfigured(f"OPENAI_API_KEY is not set: cannot run model {spec!r}")
        from agno.models.openai import OpenAIChat

        return OpenAIChat(id=model_id, api_key=settings.openai_api_key.get_secret_value(), **opts)
    if provider == "anthropic":
        if settings.anthropic_api_key is None:
            raise ProviderNotConfigured(f"ANTHROPIC_API_KEY is not set: cannot run model {spec!r}")
        from agno.models.anthropic import Claude

        return Claude(id=model_id, api_key=settings.anthropic_api_key.get_secret_value(), **opts)
    if provider == "ollama":
        from agno.models.ollama import Ollama

        ollama_opts = {"temperature": opts["temperature"]} if "temperature" in opts else {}
        return Ollama(id=model_id, host=settings.ollama_host, options=ollama_opts or None)
    if provider == "openai-compatible":
        if not settings.openai_compatible_base_url:
            raise ProviderNotConfigured(f"OPENAI_COMPATIBLE_BASE_URL is not set: cannot run model {spec!r}")
        from agno.models.openai.like import OpenAILike

        key = settings.openai_compatible_api_key.get_secret_value() if settings.openai_compatible_api_key else "not-needed"
        return OpenAILike(id=model_id, base_url=settings.openai_compatible_base_url, api_key=key, **opts)
    raise ProviderNotConfigured(f"no model factory for provider {provider!r}")

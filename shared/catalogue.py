"""What an agent definition may name: tools and model providers.

Both the gateway (validating a definition when it is created) and the agent-runner (building
the agent) read these, so a definition the gateway accepts is one every runner can build.
"""

from __future__ import annotations

TOOL_NAMES: tuple[str, ...] = ("calculator", "current_datetime", "http_fetch")

#: provider -> what it needs configured on the runner (documented in the README).
PROVIDERS: dict[str, str] = {
    "scripted": "nothing (offline deterministic model for demos and tests)",
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "ollama": "OLLAMA_HOST (default http://127.0.0.1:11434)",
    "openai-compatible": "OPENAI_COMPATIBLE_BASE_URL (+ OPENAI_COMPATIBLE_API_KEY if the server wants one)",
}


class InvalidAgentDefinition(ValueError):
    pass


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``."""
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise InvalidAgentDefinition(f"model must look like 'provider:model', got {spec!r}")
    if provider not in PROVIDERS:
        raise InvalidAgentDefinition(f"unknown model provider {provider!r}; known: {sorted(PROVIDERS)}")
    return provider, model


def validate_tool_names(names: list[str]) -> None:
    unknown = sorted(set(names) - set(TOOL_NAMES))
    if unknown:
        raise InvalidAgentDefinition(f"unknown tools {unknown}; available: {list(TOOL_NAMES)}")

"""Versioned price table: USD per million tokens, per ``provider:model``.

Costs are computed here, not by the provider (agno reports cost only when a provider does).
A model missing from the table costs ``None`` (and a warning): a made-up number in a bill is
worse than a visible gap. Bump ``PRICE_VERSION`` whenever a price changes; every usage event
records the version it was priced with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

PRICE_VERSION = "2026-11-01"


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None


PRICES: dict[str, Price] = {
    # Offline model: free, but priced so cost accounting is exercised end to end.
    "scripted:assistant": Price(0.0, 0.0),
    "scripted:priced": Price(1.0, 2.0),
    "openai:gpt-4o": Price(2.50, 10.00, 1.25),
    "openai:gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "openai:gpt-4.1": Price(2.00, 8.00, 0.50),
    "openai:gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "anthropic:claude-3-5-haiku-latest": Price(0.80, 4.00, 0.08),
    "anthropic:claude-sonnet-4-0": Price(3.00, 15.00, 0.30),
    "ollama:llama3.2": Price(0.0, 0.0),
}

_warned: set[str] = set()


def cost_usd(model: str, *, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float | None:
    price = PRICES.get(model)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            log.warning("no price for model %s in price table %s: cost recorded as null", model, PRICE_VERSION)
        return None
    cached = min(cached_tokens, input_tokens)
    cached_rate = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    return round(
        ((input_tokens - cached) * price.input_per_mtok + cached * cached_rate + output_tokens * price.output_per_mtok)
        / 1_000_000,
        10,
    )

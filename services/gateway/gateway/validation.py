"""Input rules every request body shares, whatever the database behind it.

Postgres rejects NUL characters in text and NaN in JSON, 64-bit JSON encoders reject huge
integers: without these checks such input reached the database and became a 500. Here it is
a 422 before anything is stored.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

MAX_INT = 2**31 - 1  # ids are 32-bit on Postgres (INTEGER)
MAX_JSON_INT = 2**63 - 1
MAX_DEPTH = 20


def check_value(value: Any, where: str = "body", depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: NUL characters are not allowed")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise ValueError(f"{where}: integer out of the 64-bit range")
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{where}: NaN and Infinity are not JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_value(key, where, depth + 1)
            check_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_value(item, f"{where}[{index}]", depth + 1)


class StrictBody(BaseModel):
    """Base of every request body: unknown fields are errors, strings are stripped, and the
    raw input is checked with ``check_value``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _safe_values(cls, data: Any) -> Any:
        check_value(data)
        return data

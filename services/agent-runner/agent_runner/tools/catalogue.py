"""The tools an agent definition may pick, by name.

Unknown names are rejected when an agent is defined (``validate_tool_names``), never at run
time. Each tool is a plain function agno turns into a JSON-schema tool from its signature and
docstring.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlparse

import httpx

from shared.catalogue import TOOL_NAMES, validate_tool_names

_OPS: dict[type, Callable] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}
_MAX_EXPONENT = 100


def _evaluate(node: ast.AST) -> float:
    # A whitelist walk of the syntax tree: eval() would run arbitrary code from a prompt.
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers and + - * / // % ** ( ) are allowed")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as "6 * 7" or "(2 + 3) ** 2" and return the result."""
    if len(expression) > 200:
        return "error: expression too long"
    try:
        value = _evaluate(ast.parse(expression.replace("^", "**"), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return f"error: {exc}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def current_datetime() -> str:
    """Return the current date and time in UTC, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def make_http_fetch(allowed_hosts: frozenset[str], max_bytes: int = 20_000, timeout_s: float = 5.0) -> Callable[[str], str]:
    def http_fetch(url: str) -> str:
        """Fetch a web page over HTTP(S) from an allow-listed host and return its text (truncated)."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return "error: only absolute http(s) URLs are allowed"
        if parsed.hostname.lower() not in allowed_hosts:
            return f"error: host {parsed.hostname!r} is not on the allow-list"
        try:
            with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            return f"error: {type(exc).__name__}: {exc}"
        return f"HTTP {response.status_code}\n{response.text[:max_bytes]}"

    return http_fetch


def build_tools(names: list[str], *, http_allowed_hosts: frozenset[str]) -> list[Callable]:
    validate_tool_names(names)
    factories: dict[str, Callable[[], Callable]] = {
        "calculator": lambda: calculator,
        "current_datetime": lambda: current_datetime,
        "http_fetch": lambda: make_http_fetch(http_allowed_hosts),
    }
    assert set(factories) == set(TOOL_NAMES), "catalogue and factories drifted apart"
    return [factories[name]() for name in names]

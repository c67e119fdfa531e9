"""Property-based fuzzing of the gateway's own OpenAPI document (schemathesis) against the whole
system running as separate processes, once over SQLite and once over Postgres.

The schema is loaded from the running gateway (``/openapi.json``) inside the test, and every
documented operation gets its own Hypothesis test (valid and invalid requests, derandomized):
first every operation as the demo user, then the admin routes and the metrics routes (which
answer admins differently) as the admin. For every response:

* nothing is a 5xx (``not_a_server_error``);
* a 2xx body conforms to the documented schema (``response_schema_conformance``);
* every 4xx body is the gateway's error envelope
  ``{"success": false, "error": "<non-empty>", "error_type": "<kind>", "response": null}``.

All operations run even when one fails; the test then fails with every failing operation's
first failing request (schemathesis prints it as a ``curl`` command). There is no shrinking:
each attempt is another round trip through the system, and a failing run should stay quick.

Random ids only ever reach the "not found" branch, so generated path parameters and bodies are
sometimes swapped for ids that exist (sessions, runs, agents, users, teams, ...), set up once per
stack by the ``world`` fixture: with those, messages really run through Kafka and the
agent-runner (the scripted model answers at once, so ``mode=wait`` is quick). Event streams
(``mode=stream``, ``/runs/{id}/stream/``) are read until they end, or for the request timeout
at most (schemathesis bounds an event stream's total read time by it).

The admin pass creates users, keys, teams, agents and subscriptions, but never deactivates or
revokes what existed before it started (the demo and admin users and their keys), and only
changes the agent it created itself.

Why not ``schemathesis.pytest.from_fixture``: its lazy loader sets ``Node._nodeid``, which
pytest 9.2 no longer has, so the schema is driven programmatically here.

``AGENTOS_FUZZ_EXAMPLES`` (default 15) sets the examples per operation for a deeper local run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.e2e

API = "/api/v1/agentos"
ADMIN = "/api/v1/admin"
REQUEST_TIMEOUT_S = 30
MAX_EXAMPLES = int(os.environ.get("AGENTOS_FUZZ_EXAMPLES", "15"))
# Operations the caller may not use answer 403 before looking at the request: a few examples do.
FORBIDDEN_EXAMPLES = 3


def _settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None, print_blob=False,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


# -- checks ----------------------------------------------------------------------------------
def error_envelope(ctx, response, case) -> None:
    """A 4xx answer is ``{"success": false, "error": "<non-empty>", "error_type": str, "response": null}``."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:300]!r}") from None
    assert isinstance(body, dict), f"{response.status_code} body is not a JSON object: {body!r}"
    problems = []
    if body.get("success") is not False:
        problems.append("success is not false")
    if not (isinstance(body.get("error"), str) and body["error"]):
        problems.append("error is not a non-empty string")
    if not isinstance(body.get("error_type"), str):
        problems.append("error_type is not a string")
    if "response" not in body or body["response"] is not None:
        problems.append("response is not null")
    assert not problems, f"{response.status_code} body is not the error envelope ({'; '.join(problems)}): {body!r}"
    return None


CHECKS = [not_a_server_error, response_schema_conformance, error_envelope]


# -- ids that exist ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(stack) -> dict[str, Any]:
    """Real ids to swap into generated requests, and what the admin pass must leave alone."""
    demo = httpx.Client(base_url=stack.gateway_url, timeout=60,
                        headers={"Authorization": f"Bearer {stack.demo_api_key}"})
    admin = httpx.Client(base_url=stack.gateway_url, timeout=60,
                         headers={"Authorization": f"Bearer {stack.admin_api_key}"})
    with demo, admin:
        def ok(response: httpx.Response) -> Any:
            assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.text}"
            return response.json()

        agents = [a["id"] for a in ok(demo.get(f"{API}/agents/"))["agents"]]
        sessions = {a: ok(demo.post(f"{API}/create-session/", json={"agent_id": a}))["session_id"]
                    for a in ("assistant", "analyst")}
        disposable = ok(demo.post(f"{API}/create-session/", json={"agent_id": "assistant"}))["session_id"]
        answered = ok(demo.post(f"{API}/send-message/", json={
            "agent_id": "assistant", "session_id": sessions["assistant"], "message": "What is 6 * 7?"}))
        accepted = ok(demo.post(f"{API}/send-message/", params={"mode": "async"}, json={
            "agent_id": "analyst", "session_id": sessions["analyst"], "message": "hello"}))

        existing_users = [u["id"] for u in ok(admin.get(f"{ADMIN}/users/"))]
        tag = uuid.uuid4().hex[:8]
        scratch_user = ok(admin.post(f"{ADMIN}/users/", json={"email": f"fuzz-{tag}@agentos.local"}))["id"]
        scratch_key = ok(admin.post(f"{ADMIN}/users/{scratch_user}/api-keys/", json={"name": "fuzz"}))["id"]
        team = ok(admin.post(f"{ADMIN}/teams/", json={"name": f"fuzz-{tag}"}))["id"]
        ok(admin.post(f"{ADMIN}/teams/{team}/members/", json={"user_id": scratch_user}))
        scratch_agent = ok(admin.post(f"{ADMIN}/agents/", json={
            "id": f"fuzz-{tag}", "name": "Fuzz", "model": "scripted:assistant", "tools": ["calculator"],
            "visibility": "team", "team_id": team}))["id"]
        subscription = ok(admin.post(f"{ADMIN}/subscriptions/",
                                     json={"user_id": scratch_user, "agent_id": scratch_agent}))["id"]

    return {
        "agents": agents,
        "sessions": sessions,
        "disposable_session": disposable,
        "runs": [answered["run_id"], accepted["run_id"]],
        "users": [*existing_users, scratch_user],
        "scratch_user": scratch_user,
        "scratch_key": scratch_key,
        "scratch_agent": scratch_agent,
        "team": team,
        "subscription": subscription,
        # Every user and key that existed before the scratch ones (the seeded demo and admin).
        "protected_users": set(existing_users),
        "protected_keys": set(range(1, scratch_key)),
    }


def _path_patches(world: dict[str, Any], method: str, path: str) -> list[dict[str, Any]]:
    sessions = list(world["sessions"].values())
    if method == "DELETE" and path.startswith(f"{API}/sessions/"):
        sessions = [world["disposable_session"]]  # the others stay usable for the rest of the pass
    return [
        *({"session_id": s} for s in sessions),
        *({"run_id": r} for r in world["runs"]),
        *({"agent_id": a} for a in [*world["agents"], world["scratch_agent"]]),
        *({"user_ref": ref} for ref in ("me", *map(str, world["users"]))),
        {"team_id": world["team"], "user_id": world["scratch_user"]},
        *({"user_id": u} for u in world["users"]),
        {"team_id": world["team"]},
        {"key_id": world["scratch_key"]},
        {"sub_id": world["subscription"]},
    ]


def _body_patches(world: dict[str, Any]) -> list[dict[str, Any]]:
    s = world["sessions"]
    return [
        {"agent_id": "assistant", "session_id": s["assistant"]},
        {"agent_id": "analyst", "session_id": s["analyst"]},
        *({"agent_id": a} for a in world["agents"]),
        {"agent_id": world["scratch_agent"], "user_id": world["scratch_user"]},
        *({"user_id": u} for u in world["users"]),
        {"team_id": world["team"]},
        # Agent definitions: generated model specs and tool names are never valid ones.
        *({"model": m} for m in ("scripted:assistant", "scripted:priced", "openai:gpt-4o-mini")),
        {"model": "scripted:assistant", "tools": ["calculator", "current_datetime"]},
    ]


def _keep_or_patch(value: Any, patches: list[dict[str, Any]]) -> st.SearchStrategy:
    """The generated value, or (a JSON object) the same with some of its keys set to real ids."""
    if not isinstance(value, dict):
        return st.just(value)
    usable = [patch for patch in patches if patch.keys() <= value.keys()]  # whole patches: ids that belong together
    if not usable:
        return st.just(value)
    return st.one_of(st.just(value), st.sampled_from(usable).map(lambda patch: {**value, **patch}))


def _as_int(value: Any) -> int | None:
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError, OverflowError):
        return None


def _protect(world: dict[str, Any], method: str, path: str, params: Any) -> Any:
    """Only scratch records are deactivated, revoked or changed: the stack stays usable."""
    if not isinstance(params, dict):
        return params
    params = dict(params)
    if path == f"{ADMIN}/users/{{user_id}}/deactivate/" and _as_int(params.get("user_id")) in world["protected_users"]:
        params["user_id"] = world["scratch_user"]
    if path == f"{ADMIN}/api-keys/{{key_id}}/" and _as_int(params.get("key_id")) in world["protected_keys"]:
        params["key_id"] = world["scratch_key"]
    if method == "PATCH" and path == f"{ADMIN}/agents/{{agent_id}}/" and params.get("agent_id") in world["agents"]:
        params["agent_id"] = world["scratch_agent"]
    return params


def load_schema(stack, world: dict[str, Any]):
    schema = schemathesis.openapi.from_url(
        f"{stack.gateway_url}/openapi.json", timeout=REQUEST_TIMEOUT_S,
        config=schemathesis.Config.from_dict({
            # The request timeout also bounds how long an event stream is read in total.
            "request-timeout": REQUEST_TIMEOUT_S,
            # Failure reports hide only credentials: session ids and idempotency keys stay visible.
            "output": {"sanitization": {"keys-to-sanitize": ["authorization", "api_key", "secret"],
                                        "sensitive-markers": ["auth", "secret", "password"]}},
        }),
    )

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        method, path = context.operation.method.upper(), context.operation.path
        return _keep_or_patch(path_parameters, _path_patches(world, method, path)).map(
            lambda params: _protect(world, method, path, params))

    @schema.hook
    def flatmap_body(context, body):
        return _keep_or_patch(body, _body_patches(world))

    return schema


# -- the passes --------------------------------------------------------------------------------
def fuzz(stack, world: dict[str, Any], api_key: str, *, include: Callable[[str], bool] = lambda path: True,
         forbidden: Callable[[str], bool] = lambda path: False) -> None:
    """One Hypothesis test per operation, valid and invalid data; all failures reported at the end."""
    schema = load_schema(stack, world)
    failures: list[str] = []
    seen: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # an operation schemathesis cannot use is a bug in our OpenAPI
        method, path = operation.method.upper(), operation.path
        if not include(path):
            continue
        statuses: Counter[int] = Counter()

        @_settings(FORBIDDEN_EXAMPLES if forbidden(path) else MAX_EXAMPLES)
        @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                              operation.as_strategy(GenerationMode.NEGATIVE)))
        def run(case) -> None:
            if case.path_parameters:  # the hook protects generated values; this also covers explicit ones
                case.path_parameters = _protect(world, method, path, case.path_parameters)
            try:
                response = case.call(headers={"Authorization": f"Bearer {api_key}"}, timeout=REQUEST_TIMEOUT_S)
            except requests.RequestException as exc:
                # No answer (or no gateway): shrinking would repeat the wait for every attempt.
                raise GatewayStuck(f"{operation.label}: {type(exc).__name__}: {exc}\n"
                                   f"    {case.as_curl_command()}") from None
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        seen.append(operation.label)
        try:
            run()
        except GatewayStuck as exc:
            failures.append(f"=== {operation.label}\nthe gateway stopped answering, the pass stops here:\n{exc}")
            break
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported below
            failures.append(f"=== {operation.label}\n{_describe(exc)}")
        finally:
            seen[-1] += f": {dict(sorted(statuses.items()))}"
    print("statuses per operation:\n  " + "\n  ".join(seen))
    assert seen, "no operation matched"
    assert not failures, f"{len(failures)} of {len(seen)} operations failed:\n\n" + "\n\n".join(failures)


class GatewayStuck(BaseException):
    """A request got no answer in time. A BaseException, so Hypothesis passes it on at once
    instead of shrinking (each attempt would wait the full timeout again)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FailureGroup):
        return str(exc)  # schemathesis' report: the failed checks, the response and a curl command
    if isinstance(exc, BaseExceptionGroup):  # Hypothesis found several distinct errors
        return "\n".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def test_every_operation_as_the_demo_user(stack, world):
    fuzz(stack, world, stack.demo_api_key, forbidden=lambda path: path.startswith(f"{ADMIN}/"))


def test_admin_and_metrics_operations_as_the_admin(stack, world):
    fuzz(stack, world, stack.admin_api_key, include=lambda path: path.startswith((f"{ADMIN}/", f"{API}/metrics/")))

"""Property-based fuzzing of the gateway's own OpenAPI document (schemathesis) against the whole
system running as separate processes, once over SQLite and once over Postgres.

The schema is loaded from the running gateway (``/openapi.json``) at test time through a pytest
fixture (``schemathesis.pytest.from_fixture``). Every documented operation is called with
generated requests — valid and invalid ones — first as the demo user, then the admin routes (and
the metrics routes, which answer admins differently) as the admin. For every response:

* nothing is a 5xx (``not_a_server_error``);
* a 2xx body conforms to the documented schema (``response_schema_conformance``);
* every 4xx body is the gateway's error envelope
  ``{"success": false, "error": "<non-empty>", "error_type": "<kind>", "response": null}``.

Random ids only ever reach the "not found" branch, so the generated path parameters and bodies
are sometimes swapped for ids that exist (sessions, runs, agents, users, teams, ...), set up once
per stack by the ``world`` fixture; with those, messages really run through Kafka and the
agent-runner (the scripted model answers at once). Event streams (``mode=stream``, ``/stream/``)
are read until their end or the request timeout, whichever comes first.

The admin pass creates users, keys, teams, agents and subscriptions, but never deactivates or
revokes anything that existed before it started (the demo and admin users and their keys), and
only changes the agent it created itself.

Reproducible: Hypothesis is derandomized and keeps no example database.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.e2e

API = "/api/v1/agentos"
ADMIN = "/api/v1/admin"
REQUEST_TIMEOUT_S = 30
MAX_EXAMPLES = int(os.environ.get("AGENTOS_FUZZ_EXAMPLES", "15"))

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)

CONFIG = schemathesis.Config.from_dict({
    "request-timeout": REQUEST_TIMEOUT_S,
    "generation": {"database": "none", "deterministic": True},
})


# -- checks ----------------------------------------------------------------------------------
def error_envelope(ctx, response, case) -> None:
    """A 4xx answer is always ``{"success": false, "error": str, "error_type": str, "response": null}``."""
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


STATS = {}
CHECKS = [not_a_server_error, response_schema_conformance, error_envelope]


# -- ids that exist ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(stack) -> dict[str, Any]:
    """Real ids to swap into generated requests (random ones only ever reach "not found")."""
    demo = httpx.Client(base_url=stack.gateway_url, timeout=60,
                        headers={"Authorization": f"Bearer {stack.demo_api_key}"})
    admin = httpx.Client(base_url=stack.gateway_url, timeout=60,
                         headers={"Authorization": f"Bearer {stack.admin_api_key}"})
    with demo, admin:
        def ok(response: httpx.Response) -> Any:
            assert response.status_code < 300, response.text
            return response.json()

        agents = [a["id"] for a in ok(demo.get(f"{API}/agents/"))["agents"]]
        sessions = {a: ok(demo.post(f"{API}/create-session/", json={"agent_id": a}))["session_id"]
                    for a in ("assistant", "analyst")}
        disposable = ok(demo.post(f"{API}/create-session/", json={"agent_id": "assistant"}))["session_id"]
        sent = ok(demo.post(f"{API}/send-message/", json={"agent_id": "assistant", "session_id": sessions["assistant"],
                                                           "message": "What is 6 * 7?"}))
        run_id = sent["run_id"]
        pending = ok(demo.post(f"{API}/send-message/?mode=async",
                               json={"agent_id": "analyst", "session_id": sessions["analyst"], "message": "hi"}))

        existing_users = [u["id"] for u in ok(admin.get(f"{ADMIN}/users/"))]
        tag = uuid.uuid4().hex[:8]
        scratch_user = ok(admin.post(f"{ADMIN}/users/", json={"email": f"fuzz-{tag}@agentos.local"}))["id"]
        scratch_key = ok(admin.post(f"{ADMIN}/users/{scratch_user}/api-keys/", json={"name": "fuzz"}))["id"]
        team = ok(admin.post(f"{ADMIN}/teams/", json={"name": f"fuzz-{tag}"}))["id"]
        ok(admin.post(f"{ADMIN}/teams/{team}/members/", json={"user_id": scratch_user}))
        scratch_agent = ok(admin.post(f"{ADMIN}/agents/", json={
            "id": f"fuzz-{tag}", "name": "Fuzz", "model": "scripted:assistant", "tools": ["calculator"],
            "visibility": "team", "team_id": team}))["id"]
        sub = ok(admin.post(f"{ADMIN}/subscriptions/", json={"user_id": scratch_user, "agent_id": scratch_agent}))["id"]

    return {
        "agents": agents,
        "sessions": sessions,
        "disposable_session": disposable,
        "runs": [run_id, pending["run_id"]],
        # Nothing that existed before the admin pass is deactivated or revoked: the seeded users
        # and keys (and every key issued before the scratch one) are mapped to scratch records.
        "protected_users": set(existing_users),
        "protected_keys": set(range(1, scratch_key)),
        "scratch_user": scratch_user,
        "scratch_key": scratch_key,
        "scratch_agent": scratch_agent,
        "team": team,
        "subscription": sub,
        "users": [*existing_users, scratch_user],
    }


def _as_int(value: Any) -> int | None:
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError, OverflowError):
        return None


def _keep_or_patch(value: Any, patches: list[dict[str, Any]]) -> st.SearchStrategy:
    """The generated value, or (for a JSON object) the same with some of its keys set to real values."""
    if not isinstance(value, dict):
        return st.just(value)
    usable = [patch for patch in patches if patch.keys() <= value.keys()]  # whole patches: ids that belong together
    if not usable:
        return st.just(value)
    return st.one_of(st.just(value), st.sampled_from(usable).map(lambda patch: {**value, **patch}))


def _path_patches(world: dict[str, Any], method: str, path: str) -> list[dict[str, Any]]:
    sessions = list(world["sessions"].values())
    if method == "DELETE" and path.startswith(f"{API}/sessions/"):
        sessions = [world["disposable_session"]]
    patches: list[dict[str, Any]] = [{"session_id": s} for s in sessions]
    patches += [{"run_id": r} for r in world["runs"]]
    patches += [{"agent_id": a} for a in world["agents"]]
    patches += [{"user_ref": ref} for ref in ("me", *map(str, world["users"]))]
    patches += [{"user_id": world["scratch_user"], "team_id": world["team"]},
                *({"user_id": u} for u in world["users"]),
                {"team_id": world["team"]}, {"key_id": world["scratch_key"]}, {"sub_id": world["subscription"]}]
    if path.startswith(f"{ADMIN}/agents/"):
        patches.append({"agent_id": world["scratch_agent"]})
    return patches


def _body_patches(world: dict[str, Any]) -> list[dict[str, Any]]:
    s = world["sessions"]
    return [
        {"agent_id": "assistant", "session_id": s["assistant"]},
        {"agent_id": "analyst", "session_id": s["analyst"]},
        *({"agent_id": a} for a in world["agents"]),
        {"agent_id": world["scratch_agent"], "user_id": world["scratch_user"]},
        *({"user_id": u} for u in world["users"]),
        {"team_id": world["team"]},
    ]


def _protect(world: dict[str, Any], method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    """Keep the admin pass from breaking the stack: only scratch records are deactivated,
    revoked or changed."""
    if not isinstance(params, dict):
        return params
    params = dict(params)
    if path == f"{ADMIN}/users/{{user_id}}/deactivate/" and _as_int(params.get("user_id")) in world["protected_users"]:
        params["user_id"] = world["scratch_user"]
    if path == f"{ADMIN}/api-keys/{{key_id}}/" and _as_int(params.get("key_id")) in world["protected_keys"]:
        params["key_id"] = world["scratch_key"]
    if method == "PATCH" and path == f"{ADMIN}/agents/{{agent_id}}/" and str(params.get("agent_id", "")).strip() in \
            world["agents"]:
        params["agent_id"] = world["scratch_agent"]
    return params


def load_schema(stack, world: dict[str, Any]):
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json", config=CONFIG,
                                           timeout=REQUEST_TIMEOUT_S)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        op = context.operation
        return _keep_or_patch(path_parameters, _path_patches(world, op.method.upper(), op.path))

    @schema.hook
    def map_path_parameters(context, path_parameters):
        op = context.operation
        return _protect(world, op.method.upper(), op.path, path_parameters)

    @schema.hook
    def flatmap_body(context, body):
        return _keep_or_patch(body, _body_patches(world))

    return schema


def call_and_check(case, api_key: str, world: dict[str, Any]) -> None:
    response = case.call(headers={"Authorization": f"Bearer {api_key}"}, timeout=REQUEST_TIMEOUT_S)
    STATS.setdefault(case.operation.label, []).append(response.status_code)
    case.validate_response(response, checks=CHECKS)


def fuzz(stack, world: dict[str, Any], api_key: str, include=lambda method, path: True) -> None:
    """One Hypothesis test per operation (positive and negative data); all failures reported at the end."""
    schema = load_schema(stack, world)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # an unusable operation in our own OpenAPI fails the test right here
        if not include(operation.method.upper(), operation.path):
            continue
        operations += 1
        strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                             operation.as_strategy(GenerationMode.NEGATIVE))

        @FUZZ_SETTINGS
        @given(case=strategy)
        def run(case) -> None:
            call_and_check(case, api_key, world)

        t0 = time.monotonic()
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported below
            failures.append(f"=== {operation.label}\n{_describe(exc)}")
        from collections import Counter
        print(f"TIMING {operation.label} {time.monotonic() - t0:.2f}s {sorted(Counter(STATS.pop(operation.label, [])).items())}")
    assert operations, "no operation matched"
    assert not failures, f"{len(failures)} of {operations} operations failed:\n\n" + "\n\n".join(failures)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FailureGroup):
        return str(exc)  # schemathesis' report: the failed checks, the response and a curl command
    if isinstance(exc, BaseExceptionGroup):  # Hypothesis found several distinct errors
        return "\n".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def test_every_operation_as_the_demo_user(stack, world):
    fuzz(stack, world, stack.demo_api_key)


def test_admin_and_metrics_operations_as_the_admin(stack, world):
    fuzz(stack, world, stack.admin_api_key,
         include=lambda method, path: path.startswith((f"{ADMIN}/", f"{API}/metrics/")))

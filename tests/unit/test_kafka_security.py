"""Kafka TLS / SASL settings (shared.settings.KafkaSettings) and their use by every client.

No broker here: the development broker (librdkafka mock) speaks PLAINTEXT only, so these tests
check what the settings hand to aiokafka and FastStream, and that every client takes it.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from shared.kafka.publisher import make_broker
from shared.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Pa55word-never-shown"
MECHANISMS = [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's shell (or another test) may have KAFKA_* set: start from none.
    for name in list(os.environ):
        if name.startswith("KAFKA_"):
            monkeypatch.delenv(name)


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> KafkaSettings:
    for name, value in values.items():
        monkeypatch.setenv(f"KAFKA_{name.upper()}", value)
    return KafkaSettings()


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate + unencrypted key: CA file and client certificate at once."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=agentos-test-ca"],
                   check=True, capture_output=True)
    return {"cert": cert, "key": key}


def _loaded_ca_names(context: ssl.SSLContext) -> list[str]:
    return [dict(rdn[0] for rdn in ca["subject"]).get("commonName", "") for ca in context.get_ca_certs()]


# -- PLAINTEXT default: what the dev broker and today's deployments get ----------------------

def test_plaintext_default_is_todays_behaviour() -> None:
    settings = KafkaSettings()
    assert settings.security_protocol == "PLAINTEXT"
    kwargs = settings.aiokafka_security_kwargs()
    assert kwargs == {"security_protocol": "PLAINTEXT"}
    # ... which is exactly aiokafka's default, so every client is configured as before.
    for cls in (AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient):
        assert inspect.signature(cls).parameters["security_protocol"].default == "PLAINTEXT"
    assert settings.faststream_security() is None  # KafkaBroker(security=None) = as before


def test_plaintext_make_broker_unchanged() -> None:
    broker = make_broker(KafkaSettings(), client_id="t")
    assert broker._connection_kwargs.get("security_protocol", "PLAINTEXT") == "PLAINTEXT"
    assert "sasl_plain_password" not in broker._connection_kwargs


# -- SASL ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("mechanism", "sasl_class"), MECHANISMS)
def test_sasl_plaintext(monkeypatch: pytest.MonkeyPatch, mechanism: str, sasl_class: type) -> None:
    settings = _env(monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                    sasl_username="agentos", sasl_password=PASSWORD)
    assert settings.aiokafka_security_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
        "sasl_plain_username": "agentos", "sasl_plain_password": PASSWORD,
    }
    security = settings.faststream_security()
    assert type(security) is sasl_class and not security.use_ssl
    # What FastStream hands aiokafka from it = what our own clients get.
    assert parse_security(security) == {**settings.aiokafka_security_kwargs(), "ssl_context": None}


@pytest.mark.parametrize(("mechanism", "sasl_class"), MECHANISMS)
def test_sasl_ssl(monkeypatch: pytest.MonkeyPatch, pem: dict[str, Path], mechanism: str, sasl_class: type) -> None:
    settings = _env(monkeypatch, security_protocol="SASL_SSL", sasl_mechanism=mechanism,
                    sasl_username="agentos", sasl_password=PASSWORD, ssl_cafile=str(pem["cert"]))
    kwargs = settings.aiokafka_security_kwargs()
    context = kwargs.pop("ssl_context")
    assert kwargs == {"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
                      "sasl_plain_username": "agentos", "sasl_plain_password": PASSWORD}
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert _loaded_ca_names(context) == ["agentos-test-ca"]

    security = settings.faststream_security()
    assert type(security) is sasl_class and security.use_ssl
    assert _loaded_ca_names(security.ssl_context) == ["agentos-test-ca"]
    parsed = parse_security(security)
    parsed.pop("ssl_context")
    assert parsed == kwargs


def test_lowercase_values_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _env(monkeypatch, security_protocol="sasl_plaintext", sasl_mechanism="scram-sha-256",
                    sasl_username="u", sasl_password=PASSWORD)
    assert settings.security_protocol == "SASL_PLAINTEXT" and settings.sasl_mechanism == "SCRAM-SHA-256"


def test_make_broker_passes_security_to_producer_and_subscribers(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _env(monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                    sasl_username="agentos", sasl_password=PASSWORD)
    broker = make_broker(settings, client_id="t")
    # Producer connection and the consumer builder of every subscriber (e.g. runner's cancels).
    for params in (broker._connection_kwargs, broker.config.builder.keywords):
        assert params["security_protocol"] == "SASL_PLAINTEXT"
        assert params["sasl_mechanism"] == "SCRAM-SHA-512"
        assert params["sasl_plain_username"] == "agentos"
        assert params["sasl_plain_password"] == PASSWORD


# -- SSL only ------------------------------------------------------------------------------

def test_ssl_with_system_cas(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _env(monkeypatch, security_protocol="SSL")
    kwargs = settings.aiokafka_security_kwargs()
    assert set(kwargs) == {"security_protocol", "ssl_context"} and kwargs["security_protocol"] == "SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    security = settings.faststream_security()
    assert type(security) is BaseSecurity and security.use_ssl
    assert parse_security(security)["security_protocol"] == "SSL"


def test_ssl_mutual_tls(monkeypatch: pytest.MonkeyPatch, pem: dict[str, Path]) -> None:
    settings = _env(monkeypatch, security_protocol="SSL", ssl_cafile=str(pem["cert"]),
                    ssl_certfile=str(pem["cert"]), ssl_keyfile=str(pem["key"]))
    # load_cert_chain ran inside create_ssl_context: a mismatched or bad key would raise here.
    context = settings.aiokafka_security_kwargs()["ssl_context"]
    assert _loaded_ca_names(context) == ["agentos-test-ca"]
    assert parse_security(settings.faststream_security())["security_protocol"] == "SSL"


# -- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username", "sasl_password"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_credentials_names_the_variable(monkeypatch: pytest.MonkeyPatch, protocol: str,
                                                     missing: str) -> None:
    values = {"security_protocol": protocol, "sasl_mechanism": "PLAIN", "sasl_username": "agentos",
              "sasl_password": PASSWORD}
    del values[missing]
    with pytest.raises(ValidationError) as error:
        _env(monkeypatch, **values)
    text = str(error.value)
    assert f"KAFKA_{missing.upper()}" in text and f"KAFKA_SECURITY_PROTOCOL={protocol}" in text
    assert PASSWORD not in text


def test_empty_value_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD"):
        _env(monkeypatch, security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="")


def test_ssl_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="KAFKA_SSL_CAFILE"):
        _env(monkeypatch, security_protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem"))


def test_key_needs_certificate(monkeypatch: pytest.MonkeyPatch, pem: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE"):
        _env(monkeypatch, security_protocol="SSL", ssl_keyfile=str(pem["key"]))


@pytest.mark.parametrize(("protocol", "extra", "variable"), [
    ("PLAINTEXT", {"sasl_username": "u", "sasl_password": PASSWORD}, "KAFKA_SASL_USERNAME"),
    ("SSL", {"sasl_mechanism": "PLAIN"}, "KAFKA_SASL_MECHANISM"),
    ("PLAINTEXT", {"ssl_cafile": "CERT"}, "KAFKA_SSL_CAFILE"),
])
def test_settings_the_protocol_would_ignore_are_rejected(monkeypatch: pytest.MonkeyPatch, pem: dict[str, Path],
                                                         protocol: str, extra: dict, variable: str) -> None:
    extra = {k: str(pem["cert"]) if v == "CERT" else v for k, v in extra.items()}
    with pytest.raises(ValidationError, match=variable) as error:
        _env(monkeypatch, security_protocol=protocol, **extra)
    assert PASSWORD not in str(error.value)


def test_unknown_protocol_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="security_protocol"):
        _env(monkeypatch, security_protocol="SASL_TLS")


# -- the password never shows --------------------------------------------------------------

def test_password_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _env(monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                    sasl_username="agentos", sasl_password=PASSWORD)
    for text in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump()),
                 repr(settings.faststream_security())):
        assert PASSWORD not in text
    assert settings.sasl_password.get_secret_value() == PASSWORD  # still there for the clients


# -- every client in the repo takes the settings ---------------------------------------------

CLIENTS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "KafkaBroker"}
# devbroker: the PLAINTEXT development broker itself. asyncapi: a broker that only renders the
# AsyncAPI document and never connects.
NOT_CONNECTING = {"shared/kafka/devbroker.py", "shared/asyncapi.py"}


def _client_calls() -> list[tuple[str, int, ast.Call]]:
    calls = []
    for folder in ("shared", "services", "deploy"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in NOT_CONNECTING or "/tests/" in rel:
                continue
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in CLIENTS:
                        calls.append((rel, node.lineno, node))
    return calls


def test_every_kafka_client_gets_the_security_settings() -> None:
    calls = _client_calls()
    # The known sites (gateway x2: projector + the group-less tail reader, metrics x2, ordered
    # consumer, make_broker, topic job).
    assert len(calls) >= 7, calls
    for rel, line, call in calls:
        # `security=...` (KafkaBroker) or `**<...security...>` (aiokafka kwargs).
        ok = any(kw.arg == "security" or (kw.arg is None and "security" in ast.unparse(kw.value))
                 for kw in call.keywords)
        assert ok, f"{rel}:{line} builds a Kafka client without the KAFKA_SECURITY_* settings"


def _load_create_topics():
    spec = importlib.util.spec_from_file_location("create_topics_under_test", ROOT / "deploy" / "create_topics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_topic_job_uses_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    create_topics = _load_create_topics()
    _env(monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
         sasl_password=PASSWORD)
    seen: dict = {}

    class FakeAdmin:
        def __init__(self, **kwargs) -> None:
            seen.update(kwargs)

        async def start(self) -> None:
            pass

    async def fake_ensure(servers, partitions, replication, timeout_s, increase, security=None):
        admin = await create_topics._connect(servers, 1e9, security)
        assert isinstance(admin, FakeAdmin)

    monkeypatch.setattr(create_topics, "AIOKafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(create_topics, "ensure_topics", fake_ensure)
    assert create_topics.main() == 0
    assert seen["security_protocol"] == "SASL_PLAINTEXT" and seen["sasl_plain_password"] == PASSWORD


def test_topic_job_bad_security_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    create_topics = _load_create_topics()
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    assert create_topics.main() == 2  # the documented "bad configuration" exit status
    assert "KAFKA_SASL_MECHANISM" in caplog.text and PASSWORD not in caplog.text

"""Reusable settings blocks. Each service composes them into its own pydantic-settings class.

Only environment variables configure the services (12-factor): the embedded default and a
production deployment differ only in these values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from faststream.security import BaseSecurity

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """``KAFKA_BOOTSTRAP_SERVERS`` = comma separated host:port list (a real Kafka or the
    embedded development broker started by ``python -m shared.kafka.devbroker``).

    Security (``KAFKA_SECURITY_PROTOCOL`` & co.) lives here only: every Kafka client takes
    ``aiokafka_security_kwargs()`` (raw aiokafka) or ``faststream_security()`` (KafkaBroker),
    so a secured cluster is one set of variables for every service.
    """

    # hide_input_in_errors: a validation error would otherwise print every KAFKA_* value it
    # was given, the SASL password included.
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", hide_input_in_errors=True)

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    client_id_prefix: str = "agentos"
    # Empty fetches are held this long by the broker: keep it small or every hop costs 500 ms.
    fetch_max_wait_ms: int = 10
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    request_timeout_ms: int = 10_000

    # PLAINTEXT default = what the development broker (librdkafka mock) speaks.
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    # SecretStr: shown as '**********' in repr, str, logs and model_dump_json.
    sasl_password: SecretStr | None = None
    # PEM files. No CA file = the system CAs; cert (+ key) = mutual TLS.
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @property
    def servers(self) -> list[str]:
        # FastStream does not split on commas: always hand it a list.
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        # `sasl_ssl` / `scram-sha-256` are common spellings in other clients' docs.
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile", "ssl_certfile",
                     "ssl_keyfile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `KAFKA_SSL_CAFILE=` in an env file would otherwise become Path("") = the cwd.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        # Fail at start with the variable to set, not later with an opaque broker disconnect.
        sasl = self.security_protocol.startswith("SASL_")
        if sasl:
            missing = [f"KAFKA_{name.upper()}" for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                       if not getattr(self, name)]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs {', '.join(missing)}")
        else:
            # Credentials on a non-SASL protocol would be silently ignored: the operator
            # believes the connection authenticates while it does not.
            given = [f"KAFKA_{name.upper()}" for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                     if getattr(self, name)]
            if given:
                raise ValueError(f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={self.security_protocol} "
                                 "does not use SASL (use SASL_SSL or SASL_PLAINTEXT)")
        files = {name: getattr(self, name) for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")}
        given = [f"KAFKA_{name.upper()}" for name, path in files.items() if path is not None]
        if given and not self.uses_ssl:
            raise ValueError(f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={self.security_protocol} "
                             "does not use TLS (use SSL or SASL_SSL)")
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"KAFKA_{name.upper()}={path} is not a file")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            # aiokafka would ignore a key without its certificate.
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE")
        return self

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def _ssl_context(self):
        # Imported lazily: only TLS needs it, and importing the settings stays cheap.
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)

    def aiokafka_security_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaConsumer / AIOKafkaProducer / AIOKafkaAdminClient.

        PLAINTEXT gives ``{"security_protocol": "PLAINTEXT"}`` = aiokafka's own default, so
        the development broker sees exactly the clients it saw before these settings.
        A new SSL context per call: building one is cheap and happens once per client.
        """
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_ssl:
            kwargs["ssl_context"] = self._ssl_context()
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None  # the validator guarantees it
            kwargs.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password.get_secret_value())
        return kwargs

    def faststream_security(self) -> BaseSecurity | None:
        """The ``security=`` of ``faststream.kafka.KafkaBroker``; None for PLAINTEXT (as before).

        FastStream turns it back into the same aiokafka kwargs (faststream.kafka.security):
        the class picks the SASL mechanism, ``use_ssl`` picks SASL_SSL over SASL_PLAINTEXT.
        """
        from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

        if self.security_protocol == "PLAINTEXT":
            return None
        ssl_context = self._ssl_context() if self.uses_ssl else None
        if self.security_protocol == "SSL":
            return BaseSecurity(ssl_context=ssl_context, use_ssl=True)
        sasl_class = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256,
                      "SCRAM-SHA-512": SASLScram512}[self.sasl_mechanism]
        assert self.sasl_password is not None and self.sasl_username is not None
        return sasl_class(username=self.sasl_username, password=self.sasl_password.get_secret_value(),
                          ssl_context=ssl_context, use_ssl=self.uses_ssl)


def data_dir() -> Path:
    """The embedded default keeps every file under one folder (``AGENTOS_DATA_DIR``)."""

    class _D(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="AGENTOS_", extra="ignore")
        data_dir: Path = Path(".data")

    path = _D().data_dir.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path

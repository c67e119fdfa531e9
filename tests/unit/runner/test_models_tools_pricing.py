"""Model registry, tool catalogue and price table of the agent-runner."""

import logging

import pytest
from agent_runner.models.registry import ProviderNotConfigured, build_model
from agent_runner.models.scripted import ScriptedModel
from agent_runner.pricing import PRICE_VERSION, cost_usd
from agent_runner.settings import RunnerSettings
from agent_runner.tools.catalogue import build_tools, make_http_fetch

from shared.catalogue import InvalidAgentDefinition, parse_model_spec, validate_tool_names


@pytest.fixture
def bare_settings(monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_COMPATIBLE_BASE_URL", "OPENAI_COMPATIBLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return RunnerSettings()


class TestModelRegistry:
    def test_scripted_models_need_nothing(self, bare_settings):
        model = build_model("scripted:assistant", {"latency_ms": 5}, bare_settings)
        assert isinstance(model, ScriptedModel) and model.latency_ms == 5

    @pytest.mark.parametrize("spec,variable", [("openai:gpt-4o-mini", "OPENAI_API_KEY"),
                                               ("anthropic:claude-sonnet-4-0", "ANTHROPIC_API_KEY"),
                                               ("openai-compatible:llama", "OPENAI_COMPATIBLE_BASE_URL")])
    def test_a_missing_key_is_a_clear_error_naming_the_setting_never_a_fallback(self, bare_settings, spec, variable):
        with pytest.raises(ProviderNotConfigured, match=variable):
            build_model(spec, {}, bare_settings)

    def test_an_empty_key_counts_as_missing(self, monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", "")
        with pytest.raises(ProviderNotConfigured, match="OPENAI_API_KEY"):
            build_model("openai:gpt-4o-mini", {}, RunnerSettings())

    def test_configured_providers_build_their_agno_models_with_options(self, monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:9/v1")
        settings = RunnerSettings()
        openai = build_model("openai:gpt-4o-mini", {"temperature": 0.2, "max_tokens": 64}, settings)
        assert type(openai).__name__ == "OpenAIChat" and openai.id == "gpt-4o-mini"
        assert openai.temperature == 0.2 and openai.max_tokens == 64
        assert type(build_model("anthropic:claude-sonnet-4-0", {}, settings)).__name__ == "Claude"
        assert type(build_model("ollama:llama3.2", {}, settings)).__name__ == "Ollama"
        compat = build_model("openai-compatible:llama", {}, settings)
        assert type(compat).__name__ == "OpenAILike" and compat.base_url == "http://127.0.0.1:9/v1"

    @pytest.mark.parametrize("spec", ["gpt-4", "nope:model", ":x", "openai:"])
    def test_malformed_or_unknown_specs_are_rejected(self, spec):
        with pytest.raises(InvalidAgentDefinition):
            parse_model_spec(spec)


class TestTools:
    def test_unknown_tools_are_rejected(self):
        with pytest.raises(InvalidAgentDefinition, match="rm_rf"):
            validate_tool_names(["calculator", "rm_rf"])

    def test_the_catalogue_builds_every_named_tool(self):
        tools = build_tools(["calculator", "current_datetime", "http_fetch"], http_allowed_hosts=frozenset())
        assert [t.__name__ for t in tools] == ["calculator", "current_datetime", "http_fetch"]

    def test_http_fetch_refuses_hosts_off_the_allow_list_and_non_http_urls(self):
        fetch = make_http_fetch(frozenset({"example.org"}))
        assert "not on the allow-list" in fetch("http://127.0.0.1:1/secret")
        assert "only absolute http(s)" in fetch("file:///etc/passwd")

    def test_http_fetch_reads_an_allowed_host(self):
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class Hello(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"hello from the allowed host")

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Hello)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            fetch = make_http_fetch(frozenset({"127.0.0.1"}))
            assert fetch(f"http://127.0.0.1:{server.server_port}/") == "HTTP 200\nhello from the allowed host"
        finally:
            server.shutdown()


class TestPricing:
    def test_known_models_are_priced_per_million_tokens(self):
        assert cost_usd("scripted:priced", input_tokens=1_000_000, output_tokens=500_000) == pytest.approx(2.0)
        assert cost_usd("openai:gpt-4o-mini", input_tokens=1_000_000, output_tokens=0, cached_tokens=1_000_000) \
            == pytest.approx(0.075)

    def test_an_unknown_model_costs_null_with_a_warning_never_a_guess(self, caplog):
        with caplog.at_level(logging.WARNING):
            assert cost_usd("openai:brand-new-model", input_tokens=10, output_tokens=10) is None
        assert "no price" in caplog.text and PRICE_VERSION in caplog.text

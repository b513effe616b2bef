"""LangChain's standard integration suite, in the unit tier, against a compliant model.

The dev model (SmolLM2-135M) does not follow the tool-calling or JSON convention, so on it
the standard tool and structured-output tests are expected to fail
(tests/langchain/test_standard_integration.py). Here the scripted engine answers every
request as a compliant model would (tests/langchain/compliant.py: the call or JSON that the
prompt's tools and question ask for), so LangChain's own tests check our conversions end to
end: bind_tools, tool_choice, the parsed calls, streaming, histories with tool messages,
agent loops and with_structured_output in every schema form, over real HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from steerlm.server import NeMoServer, ScriptedEngine
from tests.langchain.compliant import compliant_answer
from tests.langchain.standard import SteerLMStandardSettings


class TestSteerLMChatCompliantModel(SteerLMStandardSettings, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {}

    @pytest.fixture(autouse=True)
    def _compliant_model(
        self, nemo: NeMoServer, engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine.responder = compliant_answer
        # Some standard tests build their own instance from chat_model_params: point every
        # instance at the scripted server through the documented environment variable.
        monkeypatch.setenv("STEERLM_BASE_URL", nemo.base_url)

    # langchain-tests lets a standard test be overridden only as an expected failure.
    @pytest.mark.xfail(
        reason="a benchmark replaying recorded (VCR) provider traffic: there is none for a "
        "scripted server, and its VCR fixture fails to set up with some aiohttp releases; "
        "timing is measured in benchmarks/",
        run=False,
    )
    def test_stream_time(self) -> None:  # type: ignore[override]
        """Not run: see the reason."""

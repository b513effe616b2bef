"""LangChain's standard integration tests, against the dev server on the real small model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.langchain.standard import SteerLMStandardSettings

pytestmark = pytest.mark.integration


class TestSteerLMChatIntegration(SteerLMStandardSettings, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        # A 135M model on a CPU: keep answers short so the suite stays fast.
        return {"max_tokens": 32}

    @pytest.fixture(autouse=True)
    def _dev_server(self, real_server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        # Some standard tests build their own instance from chat_model_params: point every
        # instance at the dev server through the documented environment variable.
        monkeypatch.setenv("STEERLM_BASE_URL", real_server_url)

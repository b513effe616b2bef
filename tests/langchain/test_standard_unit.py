"""LangChain's standard unit tests for SteerLMChat."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from tests.langchain.standard import SteerLMStandardSettings


class TestSteerLMChatUnit(SteerLMStandardSettings, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"base_url": "http://127.0.0.1:5555", "attributes": {"humor": 2}}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"STEERLM_BASE_URL": "http://steerlm.example:8080"},
            {},
            {"base_url": "http://steerlm.example:8080"},
        )

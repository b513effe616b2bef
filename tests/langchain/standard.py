"""What LangChain's standard suites need to know about SteerLMChat, for both of them."""

from __future__ import annotations

from langchain_steerlm import SteerLMChat


class SteerLMStandardSettings:
    @property
    def chat_model_class(self) -> type[SteerLMChat]:
        return SteerLMChat

    @property
    def has_tool_calling(self) -> bool:
        return True  # through the prompt convention of steerlm.tools

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True  # method="json_mode": the schema goes into the system turn, as json_schema

    @property
    def model_override_value(self) -> str:
        return "my-steerlm-finetune"  # a per-call `model` only renames the reported model

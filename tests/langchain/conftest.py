"""Marks for the standard integration suite on the small dev model."""

from __future__ import annotations

import pytest

# SmolLM2-135M is not a SteerLM model and does not follow the tool-calling or JSON
# convention; the convention and parser are tested exactly against the scripted engine
# (tests/langchain/test_tools.py, tests/core/test_tools.py).
_SMALL_MODEL = (
    "the 135M dev model does not follow the prompt-based tool-calling/JSON convention; "
    "tested against the scripted engine instead"
)
XFAIL_ON_SMALL_MODEL = {
    "test_tool_calling": _SMALL_MODEL,
    "test_tool_calling_async": _SMALL_MODEL,
    "test_bind_runnables_as_tools": _SMALL_MODEL,
    "test_tool_choice": _SMALL_MODEL,
    "test_tool_calling_with_no_arguments": _SMALL_MODEL,
    "test_structured_output": _SMALL_MODEL,
    "test_structured_output_async": _SMALL_MODEL,
    "test_structured_output_pydantic_2_v1": _SMALL_MODEL,
    "test_structured_output_optional_param": _SMALL_MODEL,
    "test_agent_loop": _SMALL_MODEL,
    "test_unicode_tool_call_integration": _SMALL_MODEL,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        is_standard_integration = item.nodeid.startswith(
            "tests/langchain/test_standard_integration.py"
        )
        reason = XFAIL_ON_SMALL_MODEL.get(getattr(item, "originalname", ""))
        if is_standard_integration and reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))

"""LlamaIndex ReActAgent with a SteerLM model and one tool.

SteerLM has no native tool calling, so the ReAct text protocol drives the tool; the LLM
stops at a fabricated "Observation:" so the agent always runs the real tool. A 135M dev
model rarely follows the protocol: run this against a real SteerLM model to see it shine.

    python examples/llamaindex_react_agent.py
"""

from __future__ import annotations

import asyncio

from llama_index.core.agent.workflow import ReActAgent
from llama_index.core.tools import FunctionTool

from llamaindex_steerlm import SteerLMChat


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


async def main() -> None:
    llm = SteerLMChat(max_tokens=96).with_attributes(quality=9, helpfulness=9)
    agent = ReActAgent(tools=[FunctionTool.from_defaults(multiply)], llm=llm)
    try:
        result = await agent.run(user_msg="What is 6 times 7?", max_iterations=3)
        print("answer:", result)
    except Exception as exc:  # the small dev model may not follow the ReAct format
        print(f"the agent stopped: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    asyncio.run(main())

"""LlamaIndex: chat, complete, streaming, async, and with_attributes.

steerlm-server &
python examples/llamaindex_quickstart.py
"""

from __future__ import annotations

import asyncio

from llama_index.core.llms import ChatMessage

from llamaindex_steerlm import SteerLMChat


async def main() -> None:
    llm = SteerLMChat(max_tokens=48)

    response = llm.chat(
        [ChatMessage(role="user", content="Write one sentence about the sea.")],
        attributes={"humor": 7},
    )
    print("attributes:", response.message.additional_kwargs["attributes"])
    print("chat:", response.message.content)

    print("complete:", llm.complete("Write one sentence about apples.").text)

    for chunk in llm.stream_complete("Explain what a volcano is in one sentence."):
        print("stream delta:", chunk.delta)

    print("async:", (await llm.acomplete("Write one sentence about apples.")).text)

    # Query engines and agents pass no keywords: give them a configured copy.
    serious = llm.with_attributes(humor=0, quality=9)
    print("with_attributes:", serious.complete("Write one sentence about the sea.").text)


if __name__ == "__main__":
    asyncio.run(main())

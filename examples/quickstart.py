"""Quickstart: one LangChain call and one LlamaIndex call, each steered per call, then a
LangChain answer streamed token by token through the server's OpenAI-compatible API.

Run a server first (``make demo`` does all of this for you):

    steerlm-server &            # the dev server on a small CPU model, port 5555
    python examples/quickstart.py
"""

from __future__ import annotations

import os

from llama_index.core.llms import ChatMessage

from langchain_steerlm import SteerLMChat as LangChainSteerLM
from llamaindex_steerlm import SteerLMChat as LlamaIndexSteerLM
from steerlm import encode_attributes, get_preset

QUESTION = "Write one sentence about the sea."


def label_line(attributes: dict[str, int | str]) -> str:
    """The label line the prompt ended with, as the model saw it."""
    return "<extra_id_2>" + encode_attributes(attributes, get_preset("llama2-13b-steerlm"))


def main() -> None:
    # STEERLM_BASE_URL, or http://localhost:5555, NeMo's default port.
    langchain_llm = LangChainSteerLM(max_tokens=48)
    message = langchain_llm.invoke(QUESTION, attributes={"humor": 9, "creativity": 6})
    print("LangChain")
    print("  label line:", label_line(message.response_metadata["attributes"]))
    print("  answer:    ", message.content)
    print("  usage:     ", message.usage_metadata)

    llamaindex_llm = LlamaIndexSteerLM(max_tokens=48)
    response = llamaindex_llm.chat(
        [ChatMessage(role="user", content=QUESTION)], attributes={"humor": 0, "quality": 9}
    )
    print("LlamaIndex")
    print("  label line:", label_line(response.message.additional_kwargs["attributes"]))
    print("  answer:    ", response.message.content)
    print("  tokens:    ", response.additional_kwargs.get("total_tokens"))

    # The same server's OpenAI-compatible API (/v1) streams tokens as they are generated.
    root = os.environ.get("STEERLM_BASE_URL", "http://localhost:5555")
    streaming_llm = LangChainSteerLM(api="openai", base_url=f"{root}/v1", max_tokens=48)
    print("LangChain, streamed")
    print("  answer:     ", end="", flush=True)
    for chunk in streaming_llm.stream(QUESTION, attributes={"creativity": 9}):
        print(chunk.content, end="", flush=True)
    print()


if __name__ == "__main__":
    main()

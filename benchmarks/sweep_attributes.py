"""Which attribute changes visibly change the answers of the dev server's embedded model?

The embedded SmolLM2-135M was never trained on SteerLM label lines; in its default chat
prompt mode the dev server turns the label line into a short instruction (see
``steerlm.server.chat_mode``). This sweep measures which attribute pairs still change the
answer enough to show in a demo: for a few questions and each candidate pair of settings
(one attribute changed, everything else at the preset's defaults), it asks with greedy
decoding through the LangChain ``SteerLMChat`` and records the answer's length in tokens
(the server's usage) and whether the two texts differ. ``examples/run_demo.py`` shows the
pair that differs most, and most consistently.

Run against a running server (``make serve``) or let it start its own on a free port::

    .venv/bin/python benchmarks/sweep_attributes.py --base-url http://127.0.0.1:5555
    .venv/bin/python benchmarks/sweep_attributes.py

Printed from one run; nothing here asserts a result.
"""

from __future__ import annotations

import argparse
import difflib
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from langchain_steerlm import SteerLMChat
from steerlm import DEFAULT_PRESET, get_preset
from steerlm.presets import AttributeValue

QUESTIONS = (
    "Why is the sky blue?",
    "How do I make a cup of tea?",
    "What is a black hole?",
)

MAX_TOKENS = 160

Attributes = dict[str, AttributeValue]


@dataclass(frozen=True)
class Candidate:
    """Two settings of one attribute (or one group of attributes) on one preset."""

    name: str
    preset: str | None  # None: the default preset (llama2-13b-steerlm)
    low: Attributes
    high: Attributes


CANDIDATES = (
    Candidate("verbosity 0 vs 4", "llama2-70b-steerlm-chat", {"verbosity": 0}, {"verbosity": 4}),
    Candidate("complexity 0 vs 4", "llama2-70b-steerlm-chat", {"complexity": 0}, {"complexity": 4}),
    Candidate("humor 0 vs 9", None, {"humor": 0}, {"humor": 9}),
    Candidate("creativity 0 vs 9", None, {"creativity": 0}, {"creativity": 9}),
    Candidate(
        "quality+helpfulness 0 vs 9",
        None,
        {"quality": 0, "helpfulness": 0},
        {"quality": 9, "helpfulness": 9},
    ),
)


@dataclass
class Row:
    """One question answered at both settings of a candidate."""

    question: str
    low_tokens: int
    high_tokens: int
    low_text: str
    high_text: str

    @property
    def differ(self) -> bool:
        return self.low_text.strip() != self.high_text.strip()

    @property
    def similarity(self) -> float:
        """difflib's ratio of the two texts: 1.0 identical, 0.0 nothing in common."""
        return difflib.SequenceMatcher(None, self.low_text, self.high_text).ratio()

    @property
    def ratio(self) -> float:
        """Longer answer's tokens over the shorter one's (1.0: same length)."""
        short, long = sorted((self.low_tokens, self.high_tokens))
        return long / max(short, 1)


@dataclass
class Result:
    candidate: Candidate
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def consistent(self) -> bool:
        """Every question's answer got longer (or every one shorter) in the same direction."""
        signs = {(row.high_tokens > row.low_tokens) - (row.high_tokens < row.low_tokens)
                 for row in self.rows}  # fmt: skip
        return len(signs) == 1 and 0 not in signs

    @property
    def min_ratio(self) -> float:
        return min(row.ratio for row in self.rows)

    @property
    def score(self) -> tuple[bool, float, float]:
        """Ranks candidates: consistent direction first, then the smallest length ratio,
        then how different the texts are."""
        mean_similarity = statistics.mean(row.similarity for row in self.rows)
        return (self.consistent, self.min_ratio, 1 - mean_similarity)


def answer(llm: SteerLMChat, question: str, attributes: Attributes) -> tuple[int, str]:
    message = llm.invoke(question, attributes=attributes)
    usage = message.usage_metadata
    tokens = usage["output_tokens"] if usage else -1
    return tokens, str(message.content)


def sweep(base_url: str, questions: tuple[str, ...], max_tokens: int) -> list[Result]:
    results = []
    for candidate in CANDIDATES:
        preset = candidate.preset or DEFAULT_PRESET.name
        llm = SteerLMChat(base_url=base_url, preset=preset, max_tokens=max_tokens, temperature=0)
        result = Result(candidate)
        started = time.perf_counter()
        for question in questions:
            low_tokens, low_text = answer(llm, question, candidate.low)
            high_tokens, high_text = answer(llm, question, candidate.high)
            result.rows.append(Row(question, low_tokens, high_tokens, low_text, high_text))
        result.seconds = time.perf_counter() - started
        results.append(result)
        print(f"  {candidate.name}: {result.seconds:.1f} s", file=sys.stderr, flush=True)
    return results


def print_table(results: list[Result], show_texts: bool) -> None:
    print(f"\n{'candidate (preset)':<48} {'question':<28} {'low':>4} {'high':>4} "
          f"{'ratio':>6} {'differ':>6} {'sim':>5}")  # fmt: skip
    print("-" * 107)
    for result in results:
        preset = get_preset(result.candidate.preset).name
        label = f"{result.candidate.name} ({preset})"
        for row in result.rows:
            print(
                f"{label:<48} {row.question:<28} {row.low_tokens:>4} {row.high_tokens:>4} "
                f"{row.ratio:>5.1f}x {'yes' if row.differ else 'no':>6} {row.similarity:>5.2f}"
            )
            label = ""
            if show_texts:
                print(f"    low:  {row.low_text!r}\n    high: {row.high_text!r}")
    print("\nSummary (ranked: same direction on every question, then smallest length ratio)")
    print(f"{'candidate':<28} {'mean low':>8} {'mean high':>9} {'min ratio':>9} "
          f"{'consistent':>10} {'differ':>6} {'time':>7}")  # fmt: skip
    ranked = sorted(results, key=lambda result: result.score, reverse=True)
    for result in ranked:
        differ = sum(row.differ for row in result.rows)
        print(
            f"{result.candidate.name:<28} "
            f"{statistics.mean(row.low_tokens for row in result.rows):>8.0f} "
            f"{statistics.mean(row.high_tokens for row in result.rows):>9.0f} "
            f"{result.min_ratio:>8.1f}x {'yes' if result.consistent else 'no':>10} "
            f"{differ:>3}/{len(result.rows):<2} {result.seconds:>6.1f}s"
        )
    print(f"\nMost visible: {ranked[0].candidate.name}")


@contextmanager
def server_url(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
        return
    from steerlm.server.process import dev_server

    print("Starting the dev server on a free port...", file=sys.stderr, flush=True)
    with dev_server("--log-level", "WARNING") as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="a running dev server (default: start one)")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--texts", action="store_true", help="print the answers too")
    args = parser.parse_args()
    started = time.perf_counter()
    with server_url(args.base_url) as url:
        results = sweep(url, QUESTIONS, args.max_tokens)
    print_table(results, args.texts)
    print(f"Total: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

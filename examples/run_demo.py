"""``make demo``: see SteerLM steering on the dev server's embedded model, in seconds.

One question is answered at two settings of one attribute, ``verbosity`` 0 and 4 on the
``llama2-70b-steerlm-chat`` preset (everything else at the preset's defaults), first with
LangChain, then with LlamaIndex; then one answer is streamed token by token. Last, the
attribute model scores the two answers on that attribute, and picks the best of four
sampled answers (the dev server's stand-in scorer, not a trained attribute model). Measured with
``benchmarks/sweep_attributes.py``, verbosity is the attribute whose change shows most
clearly and most consistently on the small model: the short answer is shorter on every
question tried (humor, creativity and quality change the words, but not one way on every
question).

If a dev server already answers on ``--port`` (``make serve``), the demo uses it;
otherwise it starts one and stops it at the end. If the server dies (for instance an
illegal instruction from a llama.cpp built for another CPU), the demo says so, with the
server's exit signal, its last output and the fix.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from langchain_core.messages import AIMessage, HumanMessage
from llama_index.core.llms import ChatMessage

from langchain_steerlm import SteerLMChat as LangChainSteerLM
from langchain_steerlm import SteerLMRewardModel
from llamaindex_steerlm import SteerLMChat as LlamaIndexSteerLM
from steerlm import (
    SteerLMError,
    SteerLMScorer,
    Turn,
    build_prompt,
    get_preset,
    merge_attributes,
)
from steerlm.server.chat_mode import label_instruction
from steerlm.server.process import DevServerError, dev_server, port_in_use

QUESTION = "What is a black hole?"
PRESET = "llama2-70b-steerlm-chat"
ATTRIBUTE = "verbosity"
SETTINGS = (0, 4)  # low, high: the one thing that changes between the two answers
STREAMED = 4  # the setting of the streamed answer
MAX_TOKENS = 100  # keeps the whole demo within seconds on two CPU cores
BEST_OF = 4
BEST_OF_TOKENS = 60  # four samples, each scored: shorter, to stay within seconds
WIDTH = 88


class PortBusyError(RuntimeError):
    """Something other than the SteerLM dev server listens on the demo's port."""


def say(text: str = "", indent: str = "", hanging: str | None = None) -> None:
    """Print ``text`` wrapped to :data:`WIDTH`, paragraph by paragraph; later lines of a
    paragraph are indented by ``hanging`` (default: as the first)."""
    if not text:
        print(flush=True)
        return
    for paragraph in text.split("\n"):
        print(
            textwrap.fill(
                paragraph,
                WIDTH,
                initial_indent=indent,
                subsequent_indent=indent if hanging is None else hanging,
            )
            if paragraph.strip()
            else "",
            flush=True,
        )


def running_dev_server(port: int) -> dict[str, object] | None:
    """The ``/health`` answer of a dev server already on ``port``; None if the port is free.

    Raises:
        PortBusyError: Something listens on the port, but not the SteerLM dev server.
    """
    if not port_in_use(port):
        return None
    url = f"http://127.0.0.1:{port}/health"
    try:
        response = requests.get(url, timeout=5)
        health = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        health = None
    if (
        isinstance(health, dict)
        and health.get("status") == "ok"
        and {"engine", "nemo_version"} <= health.keys()
    ):
        return health
    raise PortBusyError(
        f"Port {port} is busy, but not with the SteerLM dev server (GET {url} did not answer "
        f"as it does). Stop whatever listens there, or pick another port: "
        f"`make demo DEMO_PORT={port + 1}` (or `.venv/bin/python examples/run_demo.py "
        f"--port {port + 1}`)."
    )


@contextmanager
def server_url(port: int) -> Iterator[tuple[str, tuple[str, ...] | None]]:
    """The URL of a dev server on ``port`` (the one already running there, or a new one),
    and the attributes its attribute model scores (None: NeMo-Aligner's nine).

    A server the demo starts scores only :data:`ATTRIBUTE`: its stand-in scorer costs one
    pass of the model per attribute and answer.
    """
    health = running_dev_server(port)
    if health is not None:
        url = f"http://127.0.0.1:{port}"
        print(f"Using the dev server already running at {url} (engine: {health['engine']}).")
        if health["engine"] != "llama":
            say(
                f"Note: that server runs the {health['engine']!r} engine, not a model; its "
                "answers will not change with the attributes. Stop it and run `make demo` "
                "again to see steering."
            )
        print(flush=True)
        yield url, None
        return
    print(f"Starting the dev server on port {port} (SmolLM2-135M on the CPU)...", flush=True)
    args = ("--log-level", "WARNING", "--reward-attributes", ATTRIBUTE)
    with dev_server(*args, port=port) as server:
        print(f"Server ready at {server.url}; it stops when the demo ends.\n", flush=True)
        yield server.url, (ATTRIBUTE,)
    print("\nServer stopped.")


def setting(value: int) -> dict[str, int]:
    return {ATTRIBUTE: value}


def show_answer(label: str, text: str, tokens: object, finish_reason: object) -> None:
    cut = f", cut at max_tokens={MAX_TOKENS}" if finish_reason == "length" else ""
    print(f"  {label}  ->  {tokens} tokens{cut}")
    if text.strip():
        say(text.strip(), indent="      ")


def langchain_part(url: str) -> dict[int, str]:
    print("1. LangChain: langchain_steerlm.SteerLMChat, the setting passed per call\n")
    llm = LangChainSteerLM(base_url=url, preset=PRESET, max_tokens=MAX_TOKENS)
    answers = {}
    for value in SETTINGS:
        message = llm.invoke(QUESTION, attributes=setting(value))
        usage = message.usage_metadata
        show_answer(
            f"llm.invoke(question, attributes={setting(value)})",
            str(message.content),
            usage["output_tokens"] if usage else "?",
            message.response_metadata.get("finish_reason"),
        )
        answers[value] = str(message.content)
        print()
    return answers


def llamaindex_part(url: str, langchain_answers: dict[int, str]) -> None:
    print("2. LlamaIndex: llamaindex_steerlm.SteerLMChat, a copy per setting (with_attributes)\n")
    llm = LlamaIndexSteerLM(base_url=url, preset=PRESET, max_tokens=MAX_TOKENS)
    messages = [ChatMessage(role="user", content=QUESTION)]
    for value in SETTINGS:
        response = llm.with_attributes(**setting(value)).chat(messages)
        text = response.message.content or ""
        label = f"llm.with_attributes({ATTRIBUTE}={value}).chat(messages)"
        tokens = response.additional_kwargs.get("completion_tokens", "?")
        finish_reason = response.additional_kwargs.get("finish_reason")
        if text.strip() == langchain_answers[value].strip():
            show_answer(label, "", tokens, finish_reason)
            print("      (the same answer as LangChain's: the same prompt, greedy decoding)")
        else:
            show_answer(label, text, tokens, finish_reason)
        print()


def explain_label_line() -> None:
    preset = get_preset(PRESET)
    low, high = (merge_attributes(preset, setting(value)) for value in SETTINGS)
    prompt = build_prompt([Turn("user", QUESTION)], low, preset)
    spec = preset.spec(ATTRIBUTE)
    assert spec is not None
    print("3. What changed: the label line\n")
    say(
        "The prompt of the first answer, as steerlm.build_prompt renders it (<extra_id_0> "
        "opens the system turn, <extra_id_1> a user or assistant turn, <extra_id_2> the "
        "label line):"
    )
    print()
    *head, label_line = prompt.rstrip("\n").split("\n")
    for line in head:  # the system prompt is long; the label line is shown whole
        print("  " + (line if len(line) <= WIDTH - 2 else line[: WIDTH - 5] + "..."))
    print(f"  {label_line}\n")
    say(
        f"A SteerLM model is trained on answers that people scored for {len(preset.keys)} "
        f"attributes (on this preset {', '.join(preset.keys)}, each {spec.describe()}). "
        "Asked a question, it reads the scores you want from the label line, the last line "
        "of its prompt, and writes an answer that would earn them. "
        f"{ATTRIBUTE.capitalize()} is how much detail the answer gives (0: the least, "
        f"{spec.maximum}: the most). You set only what you change; the preset's defaults "
        f"fill in the rest, so the second prompt differs only in its end, "
        f"{ATTRIBUTE}:{high[ATTRIBUTE]}."
    )
    print()
    say(
        "The dev server's SmolLM2-135M was never trained on label lines: in its default chat "
        "prompt mode the server turns the line into an instruction in the model's own chat "
        "template. A real SteerLM model, on NeMo or an OpenAI-compatible server, reads the "
        "label line itself; your code stays the same. Here the two label lines became:"
    )
    for attributes in (low, high):
        say(
            f"{ATTRIBUTE}:{attributes[ATTRIBUTE]} -> {label_instruction(attributes)!r}",
            indent="  ",
            hanging="    ",
        )
    print()


def stream_part(url: str) -> None:
    print(f"4. Streamed token by token, {ATTRIBUTE}={STREAMED} (LangChain, the server's /v1 API)\n")
    llm = LangChainSteerLM(api="openai", base_url=f"{url}/v1", preset=PRESET, max_tokens=MAX_TOKENS)
    print(f"  llm.stream(question, attributes={setting(STREAMED)})")
    print("      ", end="", flush=True)
    column, chunks, tokens = 6, 0, None
    started = time.perf_counter()
    first = None
    for chunk in llm.stream(QUESTION, attributes=setting(STREAMED)):
        chunks += 1
        text = str(chunk.content)
        if text and first is None:
            first = time.perf_counter() - started
        for line_number, piece in enumerate(text.split("\n")):
            if line_number or column + len(piece) > WIDTH:  # a newline, or wrap the line
                print()
                column, piece = 0, piece if line_number else piece.lstrip()
            if piece and not column:
                print("      ", end="")
                column = 6
            print(piece, end="", flush=True)
            column += len(piece)
        if chunk.usage_metadata:
            tokens = chunk.usage_metadata["output_tokens"]
    total = time.perf_counter() - started
    print(
        f"\n  ({chunks} chunks, {tokens} tokens; first text after {(first or total) * 1e3:.0f} "
        f"ms, the whole answer after {total:.1f} s)"
    )


def attribute_model_part(
    url: str, attributes: tuple[str, ...] | None, answers: dict[int, str]
) -> None:
    print("5. The attribute model: score the two answers, then pick the best of four\n")
    say(
        "SteerLM's second model reads an answer and says what its attributes are. The dev "
        "server's stand-in rates each attribute from SmolLM2's own probabilities of the "
        "digits 0-4 after a rating prompt: it shows the plumbing, it is not a trained "
        "attribute model (NeMo-Aligner's serve_reward_model.py serves one)."
    )
    print()
    scorer = SteerLMScorer(url, attributes=attributes)
    reward = SteerLMRewardModel(scorer=scorer)
    print(f"  SteerLMRewardModel(...).batch([...])  ->  {ATTRIBUTE} as the scorer rates it")
    conversations = [[HumanMessage(QUESTION), AIMessage(answers[value])] for value in SETTINGS]
    for value, scores in zip(SETTINGS, reward.batch(conversations), strict=True):
        print(f"      answer asked for {ATTRIBUTE}:{value}  ->  {scores[ATTRIBUTE]:.2f}")
    print()
    llm = LangChainSteerLM(
        base_url=url, preset=PRESET, max_tokens=BEST_OF_TOKENS, temperature=0.9, scorer=scorer
    )
    started = time.perf_counter()
    message = llm.invoke(
        QUESTION, attributes=setting(SETTINGS[1]), best_of=BEST_OF, objective=ATTRIBUTE
    )
    record = message.response_metadata["best_of"]
    print(
        f"  llm.invoke(question, best_of={BEST_OF}, objective={ATTRIBUTE!r}, temperature=0.9)"
        f"  ({time.perf_counter() - started:.1f} s)"
    )
    for index, candidate in enumerate(record["candidates"]):
        mark = "  <- chosen" if index == record["chosen"] else ""
        words = len(candidate["text"].split())
        print(f"      candidate {index}: {ATTRIBUTE} {candidate['value']:.2f}, {words} words{mark}")
    say(str(message.content).strip(), indent="      ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5555)
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        with server_url(args.port) as (url, scored):
            print(f"Question: {QUESTION}\n")
            say(
                f"Answered twice with preset {PRESET!r}, greedy decoding, at most "
                f"{MAX_TOKENS} tokens. One thing changes: {ATTRIBUTE} {SETTINGS[0]} vs "
                f"{SETTINGS[1]}.\n"
            )
            answers = langchain_part(url)
            llamaindex_part(url, answers)
            explain_label_line()
            stream_part(url)
            print()
            attribute_model_part(url, scored, answers)
    except PortBusyError as exc:
        sys.exit(f"\n{exc}")
    except DevServerError as exc:
        sys.exit(f"\nThe demo stopped because the dev server failed.\n{exc}")
    except SteerLMError as exc:
        sys.exit(f"\nThe demo stopped: the server did not answer as expected.\n{exc}")
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")


if __name__ == "__main__":
    main()

"""Every framework path against every NeMo release x tokenizer the scripted server imitates.

The oracle is NeMo's own behaviour, written out per release below (see the README section
"Stop strings and NeMo releases" for the source lines): where the server stops, what its
echo looks like, how many tokens each row holds. The client must return exactly the
model's answer, the server tokenizer's token counts (never the EOS padding of a batch)
and the true finish reason on each path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from llama_index.core.llms import ChatMessage, MessageRole

from langchain_steerlm import SteerLMChat as LangChainChat
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from steerlm.server.app import NeMoServer
from steerlm.server.scripted_engine import FakeTokenizer, ScriptedEngine, TokenizerKind

T = TypeVar("T")

RELEASES = ("1.17", "1.18", "1.20", "1.23", "2.5")
TOKENIZERS: tuple[TokenizerKind, ...] = ("sp", "sp_legacy", "hf")

QUESTIONS = ("Where was techno born?", "In which city of the United States was techno born?")
LABELS = "quality:9,toxicity:0,humor:0,creativity:0,violence:0,helpfulness:9,not_appropriate:0"
# The model goes on to make up the next turns after its answer.
NEXT_TURN = f"\n<extra_id_1>User\nThanks!\n<extra_id_1>Assistant\n<extra_id_2>{LABELS}\nBye."


@dataclass(frozen=True)
class Outcome:
    """What a path returned for one prompt."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def _through(script: str, end: str) -> str:
    return script[: script.index(end) + len(end)]


def _turn_end(release: str, tokenizer: TokenizerKind, script: str) -> str:
    """Where the server stops a script that runs on into a made-up next turn."""
    if release == "1.17":
        return script  # no end_strings: runs to end-of-sequence
    if release == "1.18":
        if tokenizer == "hf":  # markers are not in the decoded text; "quality:" is
            return _through(script, "quality:")
        return _through(script, "<extra_id_1>")
    if release == "1.20" and tokenizer == "sp":  # first token of "<extra_id_1>": "<"
        return _through(script, "\n<")
    return _through(script, "<extra_id_1>")  # a special token, or the whole string


def _the_end(release: str, tokenizer: TokenizerKind, script: str) -> str:
    """Where the server stops at the per-call stop string "The end"."""
    if release == "1.17":
        return script
    if release == "1.20" and tokenizer in ("sp", "hf"):  # first token "The" (legacy: "▁The")
        return _through(script, "\nThe")
    return _through(script, "The end")


@dataclass(frozen=True)
class Scenario:
    """Scripted answers for two prompts, call keywords, and what the client must return."""

    name: str
    scripts: tuple[str, str]
    contents: tuple[str, str]
    kwargs: dict[str, Any]
    server_text: Callable[[str, TokenizerKind, str], str]
    finish_reason: str
    same_prompts: bool = False


SCENARIOS = (
    Scenario(
        "next-turn",
        ("Techno began in Detroit." + NEXT_TURN, "It was Detroit, around 1985." + NEXT_TURN),
        ("Techno began in Detroit.", "It was Detroit, around 1985."),
        {},
        _turn_end,
        "stop",
    ),
    Scenario(
        "stop-string",
        ("Techno began in Detroit.\nThe end.", "Detroit.\nThe end. Really."),
        ("Techno began in Detroit.", "Detroit."),
        {"stop": ["The end"]},
        _the_end,
        "stop",
    ),
    Scenario(
        "length",
        ("One two three four five six.", "One two three four five six."),
        ("One two three four", "One two three four"),
        {"max_tokens": 4},
        lambda release, tokenizer, script: "One two three four",
        "length",
        same_prompts=True,
    ),
)


def _user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def _lc_outcome(message: AIMessage | AIMessageChunk) -> Outcome:
    usage = message.usage_metadata
    assert usage is not None
    assert isinstance(message.content, str)
    return Outcome(
        message.content,
        usage["input_tokens"],
        usage["output_tokens"],
        message.response_metadata["finish_reason"],
    )


def _li_outcome(content: str | None, extra: dict[str, Any]) -> Outcome:
    assert content is not None
    return Outcome(
        content, extra["prompt_tokens"], extra["completion_tokens"], extra["finish_reason"]
    )


def _lc_stream(llm: LangChainChat, question: str, kwargs: dict[str, Any]) -> list[Outcome]:
    chunks = list(llm.stream(question, **kwargs))
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return [_lc_outcome(total)]


def _li_stream(llm: LlamaIndexChat, question: str, kwargs: dict[str, Any]) -> list[Outcome]:
    responses = list(llm.stream_chat([_user(question)], **kwargs))
    return [_li_outcome(responses[-1].message.content, responses[-1].additional_kwargs)]


Path = Callable[[str, tuple[str, str], dict[str, Any]], list[Outcome]]


def _run(llm: LangChainChat | LlamaIndexChat, call: Callable[[], Awaitable[T]]) -> T:
    # One event loop per call, its connection pool closed before the loop ends.
    async def main() -> T:
        try:
            return await call()
        finally:
            await llm.aclose()

    return asyncio.run(main())


def _lc_ainvoke(url: str, qs: tuple[str, str], kw: dict[str, Any]) -> list[Outcome]:
    llm = LangChainChat(base_url=url)
    return [_lc_outcome(_run(llm, lambda: llm.ainvoke(qs[0], **kw)))]


def _lc_abatch(url: str, qs: tuple[str, str], kw: dict[str, Any]) -> list[Outcome]:
    llm = LangChainChat(base_url=url)
    return [_lc_outcome(m) for m in _run(llm, lambda: llm.abatch(list(qs), **kw))]


def _li_achat(url: str, qs: tuple[str, str], kw: dict[str, Any]) -> list[Outcome]:
    llm = LlamaIndexChat(base_url=url)
    response = _run(llm, lambda: llm.achat([_user(qs[0])], **kw))
    return [_li_outcome(response.message.content, response.additional_kwargs)]


def _lc_astream(url: str, qs: tuple[str, str], kw: dict[str, Any]) -> list[Outcome]:
    llm = LangChainChat(base_url=url)

    async def collect() -> list[AIMessageChunk]:
        return [chunk async for chunk in llm.astream(qs[0], **kw)]

    chunks = _run(llm, collect)
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return [_lc_outcome(total)]


def _li_astream_chat(url: str, qs: tuple[str, str], kw: dict[str, Any]) -> list[Outcome]:
    llm = LlamaIndexChat(base_url=url)

    async def collect() -> list[Any]:
        return [response async for response in await llm.astream_chat([_user(qs[0])], **kw)]

    last = _run(llm, collect)[-1]
    return [_li_outcome(last.message.content, last.additional_kwargs)]


def _li_acomplete(url: str, qs: tuple[str, str], kw: dict[str, Any]) -> list[Outcome]:
    llm = LlamaIndexChat(base_url=url)
    response = _run(llm, lambda: llm.acomplete(qs[0], **kw))
    return [_li_outcome(response.text, response.additional_kwargs)]


#: Each path: (base URL, the two questions, call keywords) -> one outcome per prompt sent.
PATHS: dict[str, Path] = {
    "langchain-invoke": lambda url, qs, kw: [
        _lc_outcome(LangChainChat(base_url=url).invoke(qs[0], **kw))
    ],
    "langchain-ainvoke": _lc_ainvoke,
    "langchain-batch": lambda url, qs, kw: [
        _lc_outcome(m) for m in LangChainChat(base_url=url).batch(list(qs), **kw)
    ],
    "langchain-abatch": _lc_abatch,
    "langchain-stream": lambda url, qs, kw: _lc_stream(LangChainChat(base_url=url), qs[0], kw),
    "langchain-astream": _lc_astream,
    "llamaindex-chat": lambda url, qs, kw: [
        _li_outcome(r.message.content, r.additional_kwargs)
        for r in [LlamaIndexChat(base_url=url).chat([_user(qs[0])], **kw)]
    ],
    "llamaindex-achat": _li_achat,
    "llamaindex-complete": lambda url, qs, kw: [
        _li_outcome(r.text, r.additional_kwargs)
        for r in [LlamaIndexChat(base_url=url).complete(qs[0], **kw)]
    ],
    "llamaindex-acomplete": _li_acomplete,
    "llamaindex-stream_chat": lambda url, qs, kw: _li_stream(
        LlamaIndexChat(base_url=url), qs[0], kw
    ),
    "llamaindex-astream_chat": _li_astream_chat,
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
@pytest.mark.parametrize("tokenizer", TOKENIZERS)
@pytest.mark.parametrize("release", RELEASES)
def test_exact_answer_usage_and_finish_reason(
    nemo: NeMoServer,
    engine: ScriptedEngine,
    release: str,
    tokenizer: TokenizerKind,
    scenario: Scenario,
    path: str,
) -> None:
    nemo.nemo_version = release
    engine.tokenizer = tokenizer
    engine.script(*scenario.scripts)
    questions = (QUESTIONS[0], QUESTIONS[0]) if scenario.same_prompts else QUESTIONS

    outcomes = PATHS[path](nemo.base_url, questions, scenario.kwargs)

    [body] = nemo.received
    encoder = FakeTokenizer(tokenizer)
    for index, outcome in enumerate(outcomes):
        script = scenario.scripts[index]
        generated = scenario.server_text(release, tokenizer, script)
        assert outcome == Outcome(
            scenario.contents[index],
            len(encoder.encode(body["sentences"][index])),
            len(encoder.encode(generated, continuation=True)),
            scenario.finish_reason,
        )


def test_counts_by_hand_for_each_tokenizer(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    # The generated tokens of "Techno began in Detroit.\n<extra_id_1>", counted by hand:
    # sp: Techno ▁began ▁in ▁Detroit . <0x0A> < extra _ id _ 1 >           = 13
    # sp_legacy / hf: Techno ▁began/Ġbegan ▁in ▁Detroit . <0x0A>/Ċ <extra_id_1> = 7
    # The prompt: 9 lines; sp splits each marker into 7 pieces, the others keep it whole.
    expected = {"sp": 13, "sp_legacy": 7, "hf": 7}
    for tokenizer, completion_tokens in expected.items():
        engine.tokenizer = tokenizer  # type: ignore[assignment]
        engine.script("Techno began in Detroit." + NEXT_TURN)
        message = LangChainChat(base_url=nemo.base_url).invoke("Hi")
        assert message.content == "Techno began in Detroit."
        assert message.usage_metadata is not None
        assert message.usage_metadata["output_tokens"] == completion_tokens


def test_a_batch_row_with_a_shorter_prompt_runs_past_max_tokens(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    # NeMo generates up to tokens_to_generate past the longest prompt, for every row: a
    # row whose prompt is k tokens shorter may generate max_tokens + k tokens, and its
    # finish reason is "length" only when it reaches that.
    engine.tokenizer = "sp"
    words = " ".join(f"w{i}" for i in range(40))
    engine.script(words, words)
    short, long = "Hi", "Hi there, a longer question"  # 5 more: ▁there , ▁a ▁longer ▁question
    messages = LangChainChat(base_url=nemo.base_url).batch([short, long], max_tokens=3)
    contents = [m.content for m in messages]
    assert contents == ["w0 w1 w2 w3 w4 w5 w6 w7", "w0 w1 w2"]
    assert [m.usage_metadata["output_tokens"] for m in messages if m.usage_metadata] == [8, 3]
    assert [m.response_metadata["finish_reason"] for m in messages] == ["length", "length"]


def test_padding_is_not_counted_and_logprobs_follow_the_row(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.tokenizer = "sp"
    engine.script("Detroit." + NEXT_TURN, "Techno began in Detroit, Michigan, in 1985." + NEXT_TURN)
    messages = LangChainChat(base_url=nemo.base_url).batch(["Hi", "Hi"], logprobs=True)
    assert [m.content for m in messages] == [
        "Detroit.",
        "Techno began in Detroit, Michigan, in 1985.",
    ]
    first, second = (m.usage_metadata for m in messages)
    assert first is not None and second is not None
    # Detroit . <0x0A> < extra _ id _ 1 >: 10 tokens; the row is then padded with </s>.
    assert first["output_tokens"] == 10
    assert second["output_tokens"] == 18
    assert len(messages[0].response_metadata["logprobs"]) == 10


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_answers_carry_no_whitespace_left_from_the_turn(
    nemo: NeMoServer, engine: ScriptedEngine, tokenizer: TokenizerKind
) -> None:
    engine.tokenizer = tokenizer
    engine.script("  Detroit.  \n\n<extra_id_1>User\nmore")
    assert LlamaIndexChat(base_url=nemo.base_url).complete("Hi").text == "Detroit."


def test_nemo_1_17_with_dropped_markers_stops_at_a_label_line(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    # 70B preset: its only end string is the turn marker, which the echo drops; the
    # model's made-up next assistant turn shows as a bare label line.
    nemo.nemo_version = "1.17"
    engine.tokenizer = "hf"
    engine.script("Detroit.\n<extra_id_2>quality:4,toxicity:0\nMore.")
    llm = LangChainChat(base_url=nemo.base_url, preset="llama2-70b-steerlm-chat")
    message = llm.invoke("Hi")
    assert message.content == "Detroit."
    assert message.response_metadata["stop_string"] == "<extra_id_2>"


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_a_bos_token_counts_with_the_prompt(
    nemo: NeMoServer, engine: ScriptedEngine, tokenizer: TokenizerKind
) -> None:
    engine.tokenizer = tokenizer
    engine.script("Detroit." + NEXT_TURN)
    message = LangChainChat(base_url=nemo.base_url).invoke("Hi", add_bos=True)
    assert message.content == "Detroit."
    [body] = nemo.received
    assert body["add_BOS"] is True
    assert message.usage_metadata is not None
    prompt_tokens = len(FakeTokenizer(tokenizer).encode(body["sentences"][0]))
    assert message.usage_metadata["input_tokens"] == prompt_tokens + 1

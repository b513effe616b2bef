"""Answer parsing over HTTP: extraction under each echo switch, stop truncation, usage."""

from __future__ import annotations

import pytest

from steerlm import Completion, SteerLMSettings, Turn
from steerlm.server.app import NeMoServer
from steerlm.server.engines import ScriptedEngine

QUESTION = [Turn("user", "Hi")]


def ask(nemo: NeMoServer, **kwargs: object) -> Completion:
    llm = SteerLMSettings(base_url=nemo.base_url)
    [completion] = llm.send(llm.plan_call([QUESTION], kwargs))
    return completion


@pytest.mark.parametrize(
    "echo_mode", ["exact", "drop_markers", "respace_markers", "normalize_whitespace"]
)
def test_extraction_when_the_echo_is_not_byte_identical(
    nemo: NeMoServer, engine: ScriptedEngine, echo_mode: str
) -> None:
    engine.echo_mode = echo_mode  # type: ignore[assignment]
    engine.script("Techno began in Detroit, around 1985.")
    completion = ask(nemo)
    assert completion.text == "Techno began in Detroit, around 1985."
    assert completion.usage is not None and completion.usage.completion_tokens == 13


def test_stop_in_the_middle_is_cut_with_the_newline_before_it(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("Detroit.\n<extra_id_1>User\nAnd then?")
    completion = ask(nemo)
    assert nemo.received[-1]["end_strings"][0] == "<extra_id_1>"
    # The server stopped at the end string and kept it in the echo, as NeMo does.
    assert completion.raw["sentences"].endswith("Detroit.\n<extra_id_1>")
    assert (completion.text, completion.finish_reason) == ("Detroit.", "stop")
    assert completion.stop_string == "<extra_id_1>"


def test_nemo_1_17_ignores_end_strings_and_the_client_still_cuts(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.nemo_version = "1.17"
    engine.script("Detroit.\n<extra_id_1>User\nAnd then?")
    completion = ask(nemo)
    assert completion.raw["sentences"].endswith("<extra_id_1>User\nAnd then?")
    assert (completion.text, completion.finish_reason) == ("Detroit.", "stop")
    assert completion.usage is not None and completion.usage.completion_tokens == 10


def test_earliest_of_several_stops_wins(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    nemo.nemo_version = "1.17"
    engine.script("A ### B quality:9 C")
    completion = ask(nemo, stop=["###"])
    assert (completion.text, completion.stop_string) == ("A ", "###")


def test_length_limit_is_reported(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script("one two three four five six")
    completion = ask(nemo, max_tokens=5)
    assert (completion.text, completion.finish_reason) == ("one two three", "length")
    assert completion.usage is not None and completion.usage.completion_tokens == 5


def test_end_of_sequence_before_the_limit_is_a_stop(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("Short.")
    completion = ask(nemo, max_tokens=50)
    assert (completion.finish_reason, completion.stop_string) == ("stop", None)


def test_usage_counts_the_servers_tokens(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script("Hello, wörld 🌍!")
    completion = ask(nemo)
    assert completion.text == "Hello, wörld 🌍!"
    tokens = completion.raw["tokens"]
    assert completion.usage is not None
    assert completion.usage.total_tokens == len(tokens)
    assert completion.usage.completion_tokens == 7  # Hello , _ wörld _ 🌍 !
    assert "".join(tokens[completion.usage.prompt_tokens :]) == "Hello, wörld 🌍!"


def test_logprobs_of_generated_tokens(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script("a b")
    completion = ask(nemo, logprobs=True)
    assert completion.logprobs == [-0.25, -0.25, -0.25]
    assert ask(nemo).logprobs is None


def test_markers_and_unicode_inside_an_answer(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script("Ünïcødé — ok")
    assert ask(nemo).text == "Ünïcødé — ok"


def test_stray_markers_are_removed_from_the_answer(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("<extra_id_3>The sea is wide.")
    assert ask(nemo).text == "The sea is wide."


def test_label_marker_ends_the_answer(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script("Done.\n<extra_id_2>quality:9\nMore")
    completion = ask(nemo)
    assert (completion.text, completion.stop_string) == ("Done.", "<extra_id_2>")


def test_a_marker_cut_off_by_the_length_limit_is_removed(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("Cats are smart.\n<extra_")  # as a BPE model emits the first pieces
    assert ask(nemo).text == "Cats are smart.\n"

"""Answer parsing over HTTP: extraction under each echo switch, stop truncation, usage."""

from __future__ import annotations

import pytest

from steerlm import Completion, SteerLMSettings, Turn
from steerlm.response import count_tokens, extract_answer
from steerlm.server.app import NeMoServer
from steerlm.server.scripted_engine import ScriptedEngine

QUESTION = [Turn("user", "Hi")]


def ask(nemo: NeMoServer, **kwargs: object) -> Completion:
    llm = SteerLMSettings(base_url=nemo.base_url)
    [completion] = llm.pipeline.send(llm.pipeline.plan([QUESTION], kwargs))
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
    assert (completion.text, completion.stop_string) == ("A", "###")


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
    assert ask(nemo).text == "Cats are smart."


def pieces(text: str) -> list[str]:
    """Tokens written space-separated ("NL" for a newline token)."""
    return [token.replace("NL", "\n") for token in text.split(" ")]


PROMPT = "<extra_id_1>User\nQ\n<extra_id_1>Assistant\n<extra_id_2>quality:9\n"


@pytest.mark.parametrize(
    ("tokens", "offsets", "counts"),
    [
        # Llama-2 SentencePiece: markers as text, "▁" for spaces, byte pieces, </s> padding.
        (
            pieces(
                "<s> ▁< extra _ id _ 1 > User <0x0A> Q <0x0A> < extra _ id _ 1 > Ass istant "
                "<0x0A> < extra _ id _ 2 > quality : 9 <0x0A> W <0xC3> <0xB6> r ld ▁! </s> </s>"
            ),
            None,
            (33, 6, True),
        ),
        # Byte-level BPE with special markers: "Ġ" space, "Ċ" newline, "Ã¶" for ö.
        (
            pieces(
                "<extra_id_1> User Ċ Q Ċ <extra_id_1> Assistant Ċ <extra_id_2> quality : 9 Ċ "
                "WÃ¶ rld Ġ! Ċ <extra_id_1>"
            ),
            None,
            (13, 5, False),
        ),
        # Decoded tokens (a slow GPT-2 tokenizer with byte_decoder); offsets show which
        # token has no length: the trailing "<|im_end|>" run is padding.
        (
            pieces(
                "<extra_id_1> User NL Q NL <extra_id_1> Assistant NL <extra_id_2> quality:9 NL "
                "Hi <|im_end|> <|im_end|>"
            ),
            [0, 12, 16, 17, 18, 19, 31, 40, 41, 53, 62, 63, 65, 65],
            (11, 1, True),
        ),
    ],
)
def test_count_tokens_of_each_tokenizer_family(
    tokens: list[str], offsets: list[int] | None, counts: tuple[int, int, bool]
) -> None:
    count = count_tokens(tokens, offsets, PROMPT)
    assert count is not None
    assert (count.prompt_tokens, count.completion_tokens, count.ended_with_eos) == counts


def test_count_tokens_gives_up_when_the_tokens_do_not_hold_the_prompt() -> None:
    assert count_tokens(["Other", "Ġtext"], None, PROMPT) is None
    assert count_tokens(None, None, PROMPT) is None


@pytest.mark.parametrize(
    ("generated", "dropped", "early", "answer"),
    [
        # Markers dropped from the echo: a role-name line or a label line is a new turn.
        ("Answer.\nUser\nThanks!\nAssistant\nquality:4", True, True, ("Answer.", "<extra_id_1>")),
        ("Answer.\nquality:4,humor:0\nMore", True, True, ("Answer.", "<extra_id_2>")),
        # ...but not while the markers are visible, nor inside a line.
        ("Answer.\nUser\nThanks!", False, False, ("Answer.\nUser\nThanks!", None)),
        ("Ask the User\nnow.", True, False, ("Ask the User\nnow.", None)),
        # NeMo 1.20 stopped at the first token of an end string: drop the fragment...
        ("Detroit.\nThe", False, True, ("Detroit.", "The end")),
        ("Detroit.\n<", False, True, ("Detroit.", "<extra_id_1>")),
        # ...only when generation stopped early, and only at the start of a line.
        ("Detroit.\nThe", False, False, ("Detroit.\nThe", None)),
        ("We saw The", False, True, ("We saw The", None)),
        # Whitespace of the turn structure never reaches the user.
        ("  Detroit.\n ", False, False, ("Detroit.", None)),
    ],
)
def test_extract_answer(
    generated: str, dropped: bool, early: bool, answer: tuple[str, str | None]
) -> None:
    stops = ("<extra_id_1>", "The end", "<|endoftext|>")
    assert extract_answer(generated, stops, dropped, early) == answer

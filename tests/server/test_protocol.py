"""The NeMo-compatible server's protocol over HTTP, with the scripted engine."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from steerlm.response import BYTE_TO_UNICODE
from steerlm.server.app import NeMoServer
from steerlm.server.protocol import parse_request
from steerlm.server.scripted_engine import (
    GPT2_BYTE_CHARS,
    GPT2_CHAR_BYTES,
    ScriptedEngine,
    TokenizerKind,
)


def put(nemo: NeMoServer, body: Any) -> requests.Response:
    return requests.put(f"{nemo.base_url}/generate", json=body, timeout=10)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tokens_to_generate", 0, "tokens_to_generate must be an integer greater than 0"),
        ("tokens_to_generate", 1.5, "tokens_to_generate must be an integer greater than 0"),
        ("temperature", 0, "temperature must be a positive number less than or equal to 100.0"),
        ("temperature", 101, "temperature must be a positive number less than or equal to 100.0"),
        ("top_p", 1.5, "top_p must be a positive number less than or equal to 1.0"),
        ("top_k", -1, "top_k must be a positive integer number"),
        (
            "repetition_penalty",
            0.9,
            "repetition_penalty must be a positive number no less than 1.0",
        ),
        ("greedy", "yes", "greedy must be a boolean value"),
        ("add_BOS", 1, "add_BOS must be a boolean value"),
        ("all_probs", None, "all_probs must be a boolean value"),
        ("end_strings", "<extra_id_1>", "expect end_strings to be a list of strings"),
        ("min_tokens_to_generate", -1, "min_tokens_to_generate must be an integer no less than 0"),
        ("compute_logprob", "no", "compute_logprob must be a boolean value"),
        ("random_seed", -5, "random_seed must be a positive integer number or None"),
    ],
)
def test_validation_failures_answer_http_200_with_a_json_string(
    nemo: NeMoServer, key: str, value: Any, message: str
) -> None:
    response = put(nemo, {"sentences": ["x"], key: value})
    assert response.status_code == 200
    assert response.json() == message


def test_more_than_128_sentences_is_400(nemo: NeMoServer) -> None:
    response = put(nemo, {"sentences": ["x"] * 129})
    assert (response.status_code, response.json()) == (400, "Maximum number of sentences is 128")


def test_missing_sentences_is_500(nemo: NeMoServer) -> None:
    assert put(nemo, {"tokens_to_generate": 3}).status_code == 500


def test_answer_shape_and_unknown_keys_ignored(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script("one", "two")
    response = put(nemo, {"sentences": ["A: ", "B: "], "bogus": 1, "compute_logprob": True})
    answer = response.json()
    assert answer["sentences"] == ["A: one", "B: two"]
    assert set(answer) == {"sentences", "tokens", "logprob", "token_ids", "offsets"}
    for sentence, tokens, offsets in zip(
        answer["sentences"], answer["tokens"], answer["offsets"], strict=True
    ):
        assert "".join(tokens) == sentence
        assert [sentence[o:] for o in offsets][-1] == tokens[-1]
    assert answer["logprob"][0] == [-0.25] * (len(answer["tokens"][0]) - 1)
    assert "full_logprob" in put(nemo, {"sentences": ["x"], "all_probs": True}).json()


def test_end_strings_stop_generation_and_stay_in_the_text(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("a b STOP c d")
    answer = put(nemo, {"sentences": ["> "], "end_strings": ["STOP"]}).json()
    assert answer["sentences"] == ["> a b STOP"]


def test_nemo_1_17_ignores_end_strings(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    nemo.nemo_version = "1.17"
    engine.script("a b STOP c d")
    answer = put(nemo, {"sentences": ["> "], "end_strings": ["STOP"]}).json()
    assert answer["sentences"] == ["> a b STOP c d"]


def test_tokens_to_generate_limits_the_answer(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script("a b c d e f")
    assert put(nemo, {"sentences": [""], "tokens_to_generate": 3}).json()["sentences"] == ["a b"]


def test_health_and_other_routes(nemo: NeMoServer) -> None:
    health = requests.get(f"{nemo.base_url}/health", timeout=5)
    assert health.json()["status"] == "ok"
    assert requests.post(f"{nemo.base_url}/generate", json={}, timeout=5).status_code == 405
    assert requests.put(f"{nemo.base_url}/nope", json={}, timeout=5).status_code == 404


# What reaches sampling, by release (text_generation_server.py and generate()): the server
# default is 1.2 up to 2.0.0 and 1.0 from 2.1.0, but 1.20+ pass repetition_penalty into
# generate()'s compute_attention_mask slot, so sampling always uses 1.0 there, default or
# sent; 1.20 also passes min_tokens_to_generate into compute_logprob.
@pytest.mark.parametrize(
    ("release", "default", "sent_penalty", "sent_min_tokens"),
    [
        ("1.17", 1.2, 1.5, 5),
        ("1.18", 1.2, 1.5, 5),
        ("1.20", 1.0, 1.0, 0),
        ("1.23", 1.0, 1.0, 5),
        ("2.5", 1.0, 1.0, 5),
        ("latest", 1.0, 1.0, 5),
    ],
)
def test_release_quirks_of_repetition_penalty_and_min_tokens(
    release: str, default: float, sent_penalty: float, sent_min_tokens: int
) -> None:
    _, params = parse_request({"sentences": ["x"]}, release)
    assert params.repetition_penalty == default
    _, params = parse_request(
        {"sentences": ["x"], "repetition_penalty": 1.5, "min_tokens_to_generate": 5}, release
    )
    assert (params.repetition_penalty, params.min_tokens_to_generate) == (
        sent_penalty,
        sent_min_tokens,
    )


def test_offsets_add_up_raw_token_strings_and_batches_pad_with_eos(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.tokenizer = "sp"
    engine.script("Yes.", "No, not at all.")
    answer = put(nemo, {"sentences": ["Q:\n", "Q:\n"]}).json()
    assert answer["sentences"] == ["Q:\nYes.", "Q:\nNo, not at all."]
    short, long = answer["tokens"]
    assert short == ["▁Q", ":", "<0x0A>", "Yes", ".", *["</s>"] * 5]
    assert long == ["▁Q", ":", "<0x0A>", "No", ",", "▁not", "▁at", "▁all", ".", "</s>"]
    # Not character positions: "▁Q" counts 2 and "<0x0A>" 6; only </s> counts nothing.
    assert answer["offsets"][0] == [0, 2, 3, 9, 12, 13, 13, 13, 13, 13]
    assert len(answer["token_ids"][0]) == len(answer["token_ids"][1])


@pytest.mark.parametrize(
    ("release", "sentence"),
    [
        ("1.17", "Q:\nA.\nquality:4 more"),
        ("1.18", "Q:\nA.\nquality:"),
        ("1.20", "Q:\nA.\nquality"),  # the first token of "quality:" stops
        ("1.23", "Q:\nA.\nquality:"),
        ("2.5", "Q:\nA.\nquality:"),
    ],
)
def test_where_each_release_stops_at_an_end_string(
    nemo: NeMoServer, engine: ScriptedEngine, release: str, sentence: str
) -> None:
    nemo.nemo_version = release
    engine.tokenizer = "sp"
    engine.script("A.\nquality:4 more")
    body = {"sentences": ["Q:\n"], "end_strings": ["quality:", "<|endoftext|>"]}
    assert put(nemo, body).json()["sentences"] == [sentence]


def test_nemo_1_18_without_endoftext_does_not_stop_at_end_of_sequence(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.nemo_version = "1.18"
    engine.tokenizer = "sp"
    engine.script("A.")
    body = {"sentences": ["Q:\n"], "end_strings": ["STOP"], "tokens_to_generate": 5}
    assert put(nemo, body).json()["tokens"][0][3:] == ["A", ".", "</s>", "</s>", "</s>"]


@pytest.mark.parametrize(
    ("tokenizer", "sentence"),
    [
        ("sp", "<extra_id_1>User\nQ\n<extra_id_1>Assistant\nA.\n<extra_id_1>"),
        ("sp_legacy", "<extra_id_1> User\nQ\n <extra_id_1> Assistant\nA.\n <extra_id_1>"),
        ("hf", "User\nQ\nAssistant\nA.\n"),
    ],
)
def test_tokenizer_echoes(
    nemo: NeMoServer, engine: ScriptedEngine, tokenizer: TokenizerKind, sentence: str
) -> None:
    engine.tokenizer = tokenizer
    engine.script("A.\n<extra_id_1>User")
    prompt = "<extra_id_1>User\nQ\n<extra_id_1>Assistant\n"
    body = {"sentences": [prompt], "end_strings": ["<extra_id_1>", "<|endoftext|>"]}
    assert put(nemo, body).json()["sentences"] == [sentence]


def test_the_byte_level_table_is_gpt2s() -> None:
    # Pieces as they are in GPT-2's vocab.json: space, newline, tab, DEL, NBSP, soft hyphen.
    assert [GPT2_BYTE_CHARS[b] for b in (0x20, 0x0A, 0x09, 0x7F, 0xA0, 0xAD)] == list("ĠĊĉġłŃ")
    assert "".join(GPT2_BYTE_CHARS[b] for b in " café".encode()) == "ĠcafÃ©"
    assert len(GPT2_CHAR_BYTES) == 256 and all(
        GPT2_CHAR_BYTES[GPT2_BYTE_CHARS[b]] == b for b in range(256)
    )
    # Written apart from the client's table on purpose: here the two are checked against
    # each other, so a mistake in either shows.
    assert GPT2_BYTE_CHARS == BYTE_TO_UNICODE


@pytest.mark.parametrize(
    ("release", "body", "logprob"),
    [
        ("1.17", {}, True),  # always computed before 1.20
        ("1.18", {"compute_logprob": False}, True),
        ("1.20", {"compute_logprob": True}, False),  # an unknown key in 1.20
        ("1.20", {"min_tokens_to_generate": 3}, True),  # ... lands in compute_logprob
        ("1.23", {"compute_logprob": True}, True),
        ("2.5", {}, False),
    ],
)
def test_which_releases_return_logprob(
    nemo: NeMoServer, release: str, body: dict[str, Any], logprob: bool
) -> None:
    nemo.nemo_version = release
    answer = put(nemo, {"sentences": ["x"], **body}).json()
    assert (answer["logprob"] is not None) == logprob

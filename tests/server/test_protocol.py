"""The NeMo-compatible server's protocol over HTTP, with the scripted engine."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from steerlm.server.app import NeMoServer
from steerlm.server.engines import ScriptedEngine


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

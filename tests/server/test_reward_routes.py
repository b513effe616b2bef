"""The attribute model's routes of the dev server: KServe v2 as NeMo-Aligner's PyTriton
server answers (statuses, bodies and Content-Types measured on PyTriton 0.7.0, see
docs/dev/engine-facts.md section 3b), NIM's reward chat route, the scripted rule, and the
stand-in scorer on the real model (integration)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from steerlm.server.app import NeMoServer
from steerlm.server.engine import RatedAnswer
from steerlm.server.process import DevServer
from steerlm.server.scripted_scorer import (
    HELPSTEER2_ATTRIBUTES,
    STEERLM_ATTRIBUTES,
    ScriptedScorer,
    fp32,
    scripted_scores,
    split_sentence,
)
from steerlm.server.service import Fault
from tests.scoring.helpers import annotation_text, infer_body


def post_infer(nemo: NeMoServer, body: Any, model: str = "reward_model") -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{nemo.base_url}/v2/models/{model}/infer", data=data, timeout=10)


# -- the scripted rule -----------------------------------------------------------------------


def test_the_answer_is_the_last_assistant_turn_without_the_label_prefix() -> None:
    text = (
        annotation_text("Q?", "first")
        + "\n<extra_id_1>User\nmore\n<extra_id_1>Assistant\nlast\n<extra_id_2>"
    )
    assert split_sentence(text) == RatedAnswer(question="more", answer="last")
    assert split_sentence(annotation_text("Why?", "Because.")) == RatedAnswer("Why?", "Because.")
    assert split_sentence("just text") == RatedAnswer("", "just text")


def test_the_rule_directives_then_words_over_ten() -> None:
    answer = "Funny. [[scores: humor=3.5, verbosity=-2, nope=1, bad=x]] end"
    scores = dict(zip(STEERLM_ATTRIBUTES, scripted_scores(answer, STEERLM_ATTRIBUTES), strict=True))
    assert scores["humor"] == 3.5
    assert scores["verbosity"] == -2.0
    words = len(answer.split()) / 10  # the directive's words count
    assert all(
        scores[name] == words for name in STEERLM_ATTRIBUTES if name not in {"humor", "verbosity"}
    )
    # A later directive wins; the order of the row is the order asked for.
    later = "[[scores: humor=1]] [[scores: humor=2]]"
    assert scripted_scores(later, ["verbosity", "humor"]) == [0.4, 2.0]
    assert ScriptedScorer().score([RatedAnswer("q", "a b")], ["x"]) == [[0.2]]


# -- KServe v2: health and metadata ----------------------------------------------------------


def test_health_and_model_ready(nemo: NeMoServer) -> None:
    for path in ("/v2/health/ready", "/v2/health/live", "/v2/models/reward_model/ready"):
        answer = requests.get(nemo.base_url + path, timeout=5)
        assert (answer.status_code, answer.content) == (200, b"")
        assert answer.headers["Content-Type"] == "text/plain"
    unknown = requests.get(f"{nemo.base_url}/v2/models/x/ready", timeout=5)
    assert unknown.status_code == 400
    assert unknown.content == b'{"error":"Model version not ready"}'
    assert unknown.headers["Content-Type"] == "text/plain"


def test_metadata_is_what_pytriton_reports_for_nemo_aligners_binding(nemo: NeMoServer) -> None:
    answer = requests.get(f"{nemo.base_url}/v2/models/reward_model", timeout=5)
    assert answer.headers["Content-Type"] == "application/json"
    # Byte for byte what PyTriton 0.7.0 (Triton 2.51.0) answered.
    assert answer.content == (
        b'{"name":"reward_model","versions":["1"],"platform":"python","inputs":[{"name":'
        b'"sentences","datatype":"BYTES","shape":[-1,-1]},{"name":"tokens","datatype":"INT64",'
        b'"shape":[-1,-1]},{"name":"sequence_lengths","datatype":"INT64","shape":[-1,-1]}],'
        b'"outputs":[{"name":"rewards","datatype":"FP32","shape":[-1,1]}]}'
    )
    unknown = requests.get(f"{nemo.base_url}/v2/models/x", timeout=5)
    assert unknown.status_code == 404
    assert unknown.content == b'{"error":"Request for unknown model: \'x\' is not found"}'


def test_the_model_name_is_the_servers(nemo: NeMoServer) -> None:
    nemo.reward_model = "rm"
    assert requests.get(f"{nemo.base_url}/v2/models/rm/ready", timeout=5).status_code == 200
    assert requests.get(f"{nemo.base_url}/v2/models/rm", timeout=5).json()["name"] == "rm"
    assert post_infer(nemo, infer_body(["a"]), model="rm").status_code == 200
    assert post_infer(nemo, infer_body(["a"])).status_code == 404


# -- KServe v2: inference --------------------------------------------------------------------


def test_infer_answers_one_row_per_sentence_in_order(nemo: NeMoServer) -> None:
    sentences = [
        annotation_text("Q", "one two three"),
        annotation_text("Q", "[[scores: humor=7.5, quality=-1]] a b"),
        "x",
    ]
    body = infer_body(sentences)
    answer = post_infer(nemo, body)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    value = answer.json()
    assert list(value) == ["model_name", "model_version", "outputs"]
    assert value["model_name"] == "reward_model"
    assert value["model_version"] == "1"
    (rewards,) = value["outputs"]
    assert (rewards["name"], rewards["datatype"], rewards["shape"]) == ("rewards", "FP32", [3, 9])
    expected = [fp32(0.3)] * 9 + [-1.0, 0.5, 7.5] + [0.5] * 6 + [fp32(0.1)] * 9
    assert rewards["data"] == expected  # FP32 values, row-major
    # One request, recorded byte for byte.
    assert len(nemo.reward_requests) == 1
    assert nemo.reward_requests[0]["body"] == json.dumps(body).encode()
    assert nemo.reward_requests[0]["path"] == "/v2/models/reward_model/infer"


def test_infer_echoes_the_request_id_and_takes_nested_data(nemo: NeMoServer) -> None:
    body = infer_body([["a b"]])  # type: ignore[list-item]
    body["id"] = "42"
    value = post_infer(nemo, body).json()
    assert value["id"] == "42"
    assert value["outputs"][0]["data"] == [fp32(0.2)] * 9


def test_a_merged_score_model_returns_rows_of_one(nemo: NeMoServer) -> None:
    nemo.reward_attributes = ("reward",)
    rewards = post_infer(nemo, infer_body(["a", "[[scores: reward=3]]"])).json()["outputs"][0]
    assert (rewards["shape"], rewards["data"]) == ([2, 1], [fp32(0.1), 3.0])
    # The metadata still declares [-1,1], as Triton does for any width.
    meta = requests.get(f"{nemo.base_url}/v2/models/reward_model", timeout=5).json()
    assert meta["outputs"][0]["shape"] == [-1, 1]


_NOTE = (
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension "
    "to be prepended to each input shape. If you want to specify the full shape including "
    "the batch dim in your input dims config, try setting max_batch_size to zero. See the "
    "model configuration docs for more info on max_batch_size."
)


@pytest.mark.parametrize(
    ("body", "status", "content_type", "message"),
    [
        (
            infer_body(["x"], [1]),
            400,
            "application/json",
            "[request id: <id_unknown>] unexpected shape for input 'sentences' for model "
            f"'reward_model'. Expected [-1,-1], got [1]. {_NOTE}",
        ),
        (
            infer_body(["x"], [1, 1, 1]),
            400,
            "application/json",
            "[request id: <id_unknown>] unexpected shape for input 'sentences' for model "
            f"'reward_model'. Expected [-1,-1], got [1,1,1]. {_NOTE}",
        ),
        (
            '{"inputs":',
            500,
            "application/json",
            "failed to parse the request JSON buffer: Invalid value. at 10",
        ),
        (
            "[1,2]",
            500,
            "application/json",
            "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'",
        ),
        (
            "",
            400,
            "application/json",
            "[request id: <id_unknown>] Raw request must only have 1 input (found 1) to be "
            "deduced but got 3 inputs in 'reward_model' model configuration",
        ),
        (
            {"inputs": []},
            400,
            "text/plain",
            "[request id: <id_unknown>] out of bounds index 0: request has 0 inputs",
        ),
        (
            {"inputs": [{"name": "nope", "shape": [1, 1], "datatype": "BYTES", "data": ["x"]}]},
            400,
            "application/json",
            "unexpected inference input 'nope' for model 'reward_model'",
        ),
        (
            {"inputs": [{"name": "sentences", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]},
            400,
            "application/json",
            "[request id: <id_unknown>] inference input 'sentences' data-type is 'FP32', but "
            "model 'reward_model' expects 'BYTES'",
        ),
        (
            infer_body(["x"], [2, 1]),
            400,
            "application/json",
            "[request id: <id_unknown>] expected 2 string elements for inference input "
            "'sentences' for model 'reward_model', got 1",
        ),
        (
            {"inputs": [{"name": "sentences", "datatype": "BYTES", "data": ["x"]}]},
            500,
            "application/json",
            "Unable to parse 'shape': attempt to access non-existing object member 'shape'",
        ),
        (
            {"inputs": [{"name": "sentences", "shape": [1, 1], "datatype": "BYTES", "data": [1]}]},
            500,
            "application/json",
            "Unable to parse JSON bytes array: attempt to access JSON non-string as string",
        ),
        (
            {**infer_body(["x"]), "outputs": [{"name": "nope"}]},
            400,
            "application/json",
            "unexpected inference output 'nope' for model 'reward_model'",
        ),
    ],
    ids=[
        "flat-shape",
        "3d-shape",
        "bad-json",
        "not-an-object",
        "empty",
        "no-inputs",
        "unknown-input",
        "wrong-datatype",
        "count",
        "no-shape",
        "non-string",
        "unknown-output",
    ],
)
def test_infer_errors_are_tritons(
    nemo: NeMoServer, body: Any, status: int, content_type: str, message: str
) -> None:
    answer = post_infer(nemo, body)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == content_type
    assert answer.content == json.dumps({"error": message}, separators=(",", ":")).encode()


def test_infer_of_an_unknown_model_is_a_404(nemo: NeMoServer) -> None:
    answer = post_infer(nemo, infer_body(["x"]), model="x")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "text/plain"
    assert answer.json() == {"error": "Request for unknown model: 'x' is not found"}
    assert nemo.reward_requests == []  # refused before the body is read, as Triton does


def test_what_the_dev_server_cannot_do_is_a_clear_400(nemo: NeMoServer) -> None:
    tokens = {"inputs": [{"name": "tokens", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}]}
    answer = post_infer(nemo, tokens)
    assert answer.status_code == 400
    assert "`sentences` only" in answer.json()["error"]
    binary = requests.post(
        f"{nemo.base_url}/v2/models/reward_model/infer",
        data=b"{}",
        headers={"Inference-Header-Content-Length": "2"},
        timeout=5,
    )
    assert binary.status_code == 400
    assert "binary_data=False" in binary.json()["error"]


def test_methods_and_unknown_paths(nemo: NeMoServer) -> None:
    assert (
        requests.get(f"{nemo.base_url}/v2/models/reward_model/infer", timeout=5).status_code == 405
    )
    assert requests.post(f"{nemo.base_url}/v2/models/reward_model", timeout=5).status_code == 405
    assert requests.get(f"{nemo.base_url}/v2/models/a/b/ready", timeout=5).status_code == 404
    assert requests.get(f"{nemo.base_url}/v2/models/", timeout=5).status_code == 404


def test_a_queued_fault_answers_an_infer(nemo: NeMoServer) -> None:
    nemo.faults.append(Fault(503, "busy", content_type="text/plain"))
    answer = post_infer(nemo, infer_body(["x"]))
    assert (answer.status_code, answer.text) == (503, "busy")
    assert len(nemo.reward_requests) == 1
    assert post_infer(nemo, infer_body(["x"])).status_code == 200


# -- NIM's reward chat route -----------------------------------------------------------------


def post_chat(nemo: NeMoServer, body: Any, **headers: str) -> requests.Response:
    return requests.post(
        f"{nemo.base_url}/v1/chat/completions", json=body, headers=headers, timeout=10
    )


def test_nim_answers_scores_as_logprobs_and_content(nemo: NeMoServer) -> None:
    messages = [
        {"role": "user", "content": "I am going to Paris, what should I see?"},
        {"role": "assistant", "content": "The Louvre. [[scores: helpfulness=1.6171875]]"},
    ]
    answer = post_chat(nemo, {"model": "reward_model", "messages": messages})
    assert answer.status_code == 200
    value = answer.json()
    assert set(value) == {"id", "choices", "usage"}
    (choice,) = value["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "length"
    words = 0.4  # four words in the answer, the directive included
    expected = [1.6171875, words, words, words, words]
    entries = choice["logprobs"]["content"]
    assert [e["token"] for e in entries] == list(HELPSTEER2_ATTRIBUTES)
    assert [e["logprob"] for e in entries] == expected
    assert all(e["top_logprobs"] == [] and e["bytes"] is None for e in entries)
    assert choice["message"] == {
        "role": "assistant",
        "content": "helpfulness:1.6171875,correctness:0.4,coherence:0.4,complexity:0.4,verbosity:0.4",
    }
    # NVIDIA's documented parse of the content.
    pairs = [pair.split(":") for pair in choice["message"]["content"].split(",")]
    assert {k: float(v) for k, v in pairs} == dict(
        zip(HELPSTEER2_ATTRIBUTES, expected, strict=True)
    )
    assert value["usage"] == {"prompt_tokens": 13, "completion_tokens": 1, "total_tokens": 14}
    assert json.loads(nemo.reward_requests[0]["body"])["messages"] == messages


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (
            {"model": "other", "messages": [{"role": "assistant", "content": "a"}]},
            404,
            "NotFoundError",
        ),
        (
            {"model": "reward_model", "messages": [{"role": "user", "content": "q"}]},
            400,
            "BadRequestError",
        ),
        ({"model": "reward_model", "messages": []}, 400, "BadRequestError"),
        ({"model": "reward_model", "messages": [{"role": "assistant"}]}, 400, "BadRequestError"),
        ([1], 400, "BadRequestError"),
    ],
)
def test_nim_errors_are_openai_error_objects(
    nemo: NeMoServer, body: Any, status: int, kind: str
) -> None:
    answer = post_chat(nemo, body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == (kind, status)
    assert error["message"]


def test_nim_checks_the_api_key(nemo: NeMoServer) -> None:
    nemo.api_key = "secret"
    body = {"model": "reward_model", "messages": [{"role": "assistant", "content": "a"}]}
    assert post_chat(nemo, body).status_code == 401
    assert post_chat(nemo, body, Authorization="Bearer secret").status_code == 200


# -- the stand-in scorer on the real model ---------------------------------------------------


@pytest.mark.integration
def test_the_stand_in_scores_on_the_real_model(real_server: DevServer) -> None:
    real_server.raise_if_dead()
    url = real_server.url
    sentences = [
        annotation_text(
            "Tell me a joke.", "Why did the cat sit on the computer? To watch the mouse."
        ),
        annotation_text("Tell me a joke.", "Cats are mammals."),
    ]
    answer = requests.post(
        f"{url}/v2/models/reward_model/infer", json=infer_body(sentences), timeout=120
    )
    assert answer.status_code == 200, answer.text
    rewards = answer.json()["outputs"][0]
    assert rewards["shape"] == [2, 9]
    assert all(0.0 <= score <= 4.0 for score in rewards["data"])  # expected digits 0-4
    again = requests.post(
        f"{url}/v2/models/reward_model/infer", json=infer_body(sentences), timeout=120
    )
    assert again.json()["outputs"][0]["data"] == rewards["data"]  # deterministic
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    nim = requests.post(
        f"{url}/v1/chat/completions",
        json={"model": "reward_model", "messages": messages},
        timeout=120,
    )
    entries = nim.json()["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in entries] == list(HELPSTEER2_ATTRIBUTES)
    assert all(0.0 <= e["logprob"] <= 4.0 for e in entries)

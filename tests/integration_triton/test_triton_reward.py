"""The attribute model's wire contract on a real Triton server (PyTriton 0.7.0, bound as
NeMo-Aligner binds its model), the dev server's imitation of it, and ``SteerLMScorer``
against it.

The stand-in model scores by the dev server's scripted rule, so one expectation holds on
both servers; each request here is also sent to the dev server, which must answer alike.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from steerlm.server.app import NeMoServer
from steerlm.server.scripted_scorer import STEERLM_ATTRIBUTES, fp32, scripted_scores
from tests.scoring.helpers import annotation_text, infer_body

pytestmark = pytest.mark.integration


def both(
    triton_url: str, nemo: NeMoServer, method: str, path: str, body: Any = None
) -> tuple[requests.Response, requests.Response]:
    """The same request to the real Triton server and to the dev server."""
    data = None if body is None else body if isinstance(body, str) else json.dumps(body)
    answers = tuple(
        requests.request(method, base + path, data=data, timeout=30)
        for base in (triton_url, nemo.base_url)
    )
    return answers[0], answers[1]


def test_health_routes(triton_url: str, nemo: NeMoServer) -> None:
    for path in ("/v2/health/ready", "/v2/health/live", "/v2/models/reward_model/ready"):
        real, dev = both(triton_url, nemo, "GET", path)
        assert (real.status_code, real.content) == (200, b"")
        assert (dev.status_code, dev.content) == (200, b"")
        assert dev.headers["Content-Type"] == real.headers["Content-Type"]


def test_metadata_byte_for_byte(triton_url: str, nemo: NeMoServer) -> None:
    real, dev = both(triton_url, nemo, "GET", "/v2/models/reward_model")
    assert real.status_code == dev.status_code == 200
    assert dev.content == real.content
    assert real.json()["outputs"] == [{"name": "rewards", "datatype": "FP32", "shape": [-1, 1]}]


def test_rows_of_nine_in_request_order(triton_url: str, nemo: NeMoServer) -> None:
    answers = ["one two three", "[[scores: humor=7.5, quality=-1]] a b", "x", "é ü"]
    body = infer_body([annotation_text("Q?", a) for a in answers])
    real, dev = both(triton_url, nemo, "POST", "/v2/models/reward_model/infer", body)
    assert real.status_code == 200, real.text
    rewards = real.json()["outputs"][0]
    assert (rewards["name"], rewards["datatype"], rewards["shape"]) == ("rewards", "FP32", [4, 9])
    expected = [fp32(s) for a in answers for s in scripted_scores(a, STEERLM_ATTRIBUTES)]
    assert rewards["data"] == expected
    # Same JSON values from the dev server (Triton writes some floats with other last
    # digits, e.g. 0.30000001192092898 for 0.30000001192092896: the same double).
    assert dev.json() == real.json()
    assert dev.headers["Content-Type"] == real.headers["Content-Type"]


def test_a_request_id_is_echoed(triton_url: str, nemo: NeMoServer) -> None:
    body = {**infer_body(["a b"]), "id": "7"}
    real, dev = both(triton_url, nemo, "POST", "/v2/models/reward_model/infer", body)
    assert real.json()["id"] == "7"
    assert dev.json() == real.json()


@pytest.mark.parametrize(
    "body",
    [
        infer_body(["x"], [1]),
        infer_body(["x", "y"], [2]),
        infer_body(["x"], [2, 1]),
        '{"inputs":',
        "[1,2]",
        "",
        {"inputs": []},
        {"inputs": [{"name": "nope", "shape": [1, 1], "datatype": "BYTES", "data": ["x"]}]},
        {"inputs": [{"name": "sentences", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]},
        {"inputs": [{"name": "sentences", "datatype": "BYTES", "data": ["x"]}]},
        {**infer_body(["x"]), "outputs": [{"name": "nope"}]},
    ],
    ids=[
        "flat",
        "flat-2",
        "count",
        "bad-json",
        "array",
        "empty",
        "no-inputs",
        "unknown-input",
        "datatype",
        "no-shape",
        "unknown-output",
    ],
)
def test_errors_as_triton_answers_them(triton_url: str, nemo: NeMoServer, body: Any) -> None:
    real, dev = both(triton_url, nemo, "POST", "/v2/models/reward_model/infer", body)
    assert real.status_code >= 400
    assert (dev.status_code, dev.content) == (real.status_code, real.content)
    assert dev.headers["Content-Type"] == real.headers["Content-Type"]


def test_a_flat_shape_is_a_400(triton_url: str) -> None:
    answer = requests.post(
        f"{triton_url}/v2/models/reward_model/infer", json=infer_body(["x"], [1]), timeout=30
    )
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(
        "[request id: <id_unknown>] unexpected shape for input 'sentences' for model "
        "'reward_model'. Expected [-1,-1], got [1]."
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/models/x/infer"),
        ("GET", "/v2/models/x"),
        ("GET", "/v2/models/x/ready"),
    ],
)
def test_an_unknown_model(triton_url: str, nemo: NeMoServer, method: str, path: str) -> None:
    body = infer_body(["x"]) if method == "POST" else None
    real, dev = both(triton_url, nemo, method, path, body)
    assert real.status_code in (400, 404)
    assert (dev.status_code, dev.content) == (real.status_code, real.content)
    assert dev.headers["Content-Type"] == real.headers["Content-Type"]


# -- the client ------------------------------------------------------------------------------


def test_steerlm_scorer_scores_on_triton(triton_url: str, nemo: NeMoServer) -> None:
    from steerlm import SteerLMScorer

    conversations = [
        [("user", "Tell me a joke."), ("assistant", "[[scores: humor=3.6]] Knock knock.")],
        [("user", "Hi?"), ("assistant", "Hello there, friend.")],
    ]
    with SteerLMScorer(base_url=triton_url) as scorer:
        real = scorer.score(conversations)
    with SteerLMScorer(base_url=nemo.base_url) as scorer:
        dev = scorer.score(conversations)
    assert [list(s) for s in real] == [list(STEERLM_ATTRIBUTES)] * 2
    assert real[0]["humor"] == pytest.approx(3.6)
    assert real[0]["quality"] == pytest.approx(0.4)  # four words, the directive included
    assert real[1]["helpfulness"] == pytest.approx(0.3)
    assert [dict(s) for s in dev] == [dict(s) for s in real]
    # One request for the batch on the dev server.
    assert len(nemo.reward_requests) == 1


async def test_steerlm_scorer_ascore_on_triton(triton_url: str) -> None:
    from steerlm import SteerLMScorer

    conversations = [[("user", "Q"), ("assistant", f"answer {'word ' * n}")] for n in range(5)]
    async with SteerLMScorer(base_url=triton_url) as scorer:
        scores = await scorer.ascore(conversations)
    assert [s["verbosity"] for s in scores] == pytest.approx([0.1 * (n + 1) for n in range(5)])


def test_a_merged_score_row_width_mismatch_is_clear(triton_url: str) -> None:
    from steerlm import SteerLMScorer
    from steerlm.errors import SteerLMError

    scorer = SteerLMScorer(base_url=triton_url, attributes=("reward",))
    with scorer, pytest.raises(SteerLMError, match="9"):
        scorer.score([[("user", "Q"), ("assistant", "A")]])

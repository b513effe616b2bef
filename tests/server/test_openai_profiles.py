"""The ``/v1`` profiles over HTTP: each imitated engine behaviour, checked against its source.

The expected values below are the engines' own (see the citations in
``steerlm/server/openai_profiles.py`` and ``docs/dev/engine-facts.md``), not what the
client happens to need.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from steerlm.server import openai_profiles
from steerlm.server.app import NeMoServer
from steerlm.server.scripted_engine import ScriptedEngine

SIX_STOPS = ["a", "b", "c", "d", "e", "f"]


def post(nemo: NeMoServer, body: object, path: str = "/v1/completions") -> requests.Response:
    return requests.post(nemo.base_url + path, json=body, timeout=10, allow_redirects=False)


def test_reset_returns_to_the_default_profile(nemo: NeMoServer) -> None:
    nemo.openai_profile = "vllm"
    nemo.reset()
    assert nemo.openai_profile == openai_profiles.DEFAULT_PROFILE
    with pytest.raises(ValueError, match="openai_profile must be one of"):
        NeMoServer(("127.0.0.1", 0), ScriptedEngine(), openai_profile="nope")


def test_the_default_profile_has_no_slash_redirect(nemo: NeMoServer) -> None:
    assert post(nemo, {"prompt": "x"}, "/v1/completions/").status_code == 404
    assert post(nemo, {"prompt": "x", "stop": SIX_STOPS}).status_code == 200


# -- vLLM -----------------------------------------------------------------------------------


def test_vllm_refuses_more_than_four_stop_strings(nemo: NeMoServer) -> None:
    nemo.openai_profile = "vllm"
    refused = post(nemo, {"prompt": "x", "stop": SIX_STOPS})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("Bad Request", "body.stop", 400)
    assert error["message"].startswith("2 validation errors:\n")
    assert "List should have at most 4 items after validation, not 6" in error["message"]
    assert post(nemo, {"prompt": "x", "stop": SIX_STOPS[:4]}).status_code == 200


def test_vllm_redirects_the_slash_form_and_lists_its_models(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.openai_profile = "vllm"
    moved = post(nemo, {"prompt": "x"}, "/v1/completions/")
    assert moved.status_code == 307
    assert moved.headers["Location"] == nemo.base_url + "/v1/completions"
    assert moved.content == b""
    card = requests.get(nemo.base_url + "/v1/models", timeout=5).json()["data"][0]
    assert (card["owned_by"], card["max_model_len"]) == ("vllm", engine.context_window)
    assert {"root", "parent", "permission"} <= set(card)


def test_vllm_answers_with_stop_reason_and_its_error_objects(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.openai_profile = "vllm"
    engine.script("Hello. STOP and more")
    choice = post(nemo, {"prompt": "x", "stop": ["STOP"], "max_tokens": 50}).json()["choices"][0]
    assert (choice["text"], choice["finish_reason"], choice["stop_reason"]) == (
        "Hello. ",
        "stop",
        "STOP",
    )
    missing = post(nemo, {"prompt": "x", "model": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFoundError"


# -- TensorRT-LLM ---------------------------------------------------------------------------


def test_trtllm_refuses_keys_outside_its_completion_request(nemo: NeMoServer) -> None:
    nemo.openai_profile = "trtllm"
    refused = post(nemo, {"model": "m", "prompt": "x", "nvext": {"guided_json": {}}})
    assert refused.status_code == 400
    message = refused.json()["error"]
    assert isinstance(message, str)  # {"error": str(exc)}, not the flat ErrorResponse
    assert "'type': 'extra_forbidden', 'loc': ('body', 'nvext')" in message
    missing = post(nemo, {"prompt": "x"}).json()["error"]
    assert "'type': 'missing', 'loc': ('body', 'model')" in missing
    every_field = {key: None for key in openai_profiles.TRTLLM_COMPLETION_FIELDS}
    accepted = post(nemo, {**every_field, "model": "m", "prompt": "x", "stop": SIX_STOPS})
    assert accepted.status_code == 200, accepted.text


def test_trtllm_models_and_flat_errors(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    nemo.openai_profile = "trtllm"
    card = requests.get(nemo.base_url + "/v1/models", timeout=5).json()["data"][0]
    assert card["owned_by"] == "tensorrt_llm"
    too_long = post(nemo, {"model": "m", "prompt": "word " * (engine.context_window + 10)})
    assert too_long.status_code == 400
    assert too_long.json()["object"] == "error"
    assert set(too_long.json()) == {"object", "message", "type", "param", "code"}


# -- NIM and llama.cpp ----------------------------------------------------------------------


def test_nim_accepts_nvext_and_says_owned_by_system(nemo: NeMoServer) -> None:
    nemo.openai_profile = "nim"
    assert post(nemo, {"prompt": "x", "nvext": {"guided_json": {"type": "object"}}}).ok
    card = requests.get(nemo.base_url + "/v1/models", timeout=5).json()["data"][0]
    assert card["owned_by"] == "system"


def test_llamacpp_accepts_json_schema_or_grammar(nemo: NeMoServer) -> None:
    nemo.openai_profile = "llamacpp"
    assert post(nemo, {"prompt": "x", "json_schema": {"type": "object"}}).ok
    assert post(nemo, {"prompt": "x", "grammar": 'root ::= "a"'}).ok
    both = post(nemo, {"prompt": "x", "json_schema": {}, "grammar": "root ::= x"})
    assert both.status_code == 400
    assert both.json()["error"]["type"] == "invalid_request_error"
    card = requests.get(nemo.base_url + "/v1/models", timeout=5).json()["data"][0]
    assert card["owned_by"] == "llamacpp"
    assert post(nemo, {"prompt": "x"}, "/v1/completions/").status_code == 404


# -- Export-Deploy's PyTriton proxy ---------------------------------------------------------


def test_nemo_deploy_routes_only_the_slash_form(nemo: NeMoServer) -> None:
    nemo.openai_profile = "nemo-deploy"
    moved = post(nemo, {"model": "m", "prompt": "x"})
    assert moved.status_code == 307
    assert moved.headers["Location"] == nemo.base_url + "/v1/completions/"
    assert post(nemo, {"model": "m", "prompt": "x"}, "/v1/completions/").ok
    models = requests.get(nemo.base_url + "/v1/models", timeout=5)
    assert (models.status_code, models.json()) == (404, {"detail": "Not Found"})


def test_nemo_deploy_validates_as_fastapi_does(nemo: NeMoServer) -> None:
    nemo.openai_profile = "nemo-deploy"
    refused = post(nemo, {"prompt": ["a", "b"]}, "/v1/completions/")
    assert refused.status_code == 422
    assert [(e["type"], e["loc"]) for e in refused.json()["detail"]] == [
        ("missing", ["body", "model"]),
        ("string_type", ["body", "prompt"]),
    ]
    both = post(nemo, {"model": "m", "prompt": "x", "top_k": 5, "top_p": 0.9}, "/v1/completions/")
    assert (both.status_code, both.text) == (500, "Internal Server Error")


def test_nemo_deploy_ignores_stop_and_stream(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    nemo.openai_profile = "nemo-deploy"
    engine.script("one STOP two")
    body = {"model": "m", "prompt": "x", "stop": ["STOP"], "stream": True, "max_tokens": 50}
    answer = post(nemo, body, "/v1/completions/")
    assert answer.headers["Content-Type"] == "application/json"
    value = answer.json()
    assert set(value) == {"id", "object", "created", "model", "choices"}  # no usage
    assert value["model"] == "m"
    assert value["choices"] == [{"text": "one STOP two", "logprobs": None}]


# -- Export-Deploy's Ray deployment ---------------------------------------------------------


def test_nemo_deploy_ray_answers(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    nemo.openai_profile = "nemo-deploy-ray"
    engine.script("one two STOP three")
    body = {"prompt": "a b c", "stop": "STOP", "stream": True, "max_tokens": 50}
    answer = post(nemo, body, "/v1/completions/")
    assert answer.headers["Content-Type"] == "application/json"
    value = answer.json()
    choice = value["choices"][0]
    assert choice["text"].startswith("one two") and "three" not in choice["text"]
    assert choice["logprobs"] == {"token_logprobs": None, "top_logprobs": None}
    words = len(choice["text"].split())
    assert value["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": words,
        "total_tokens": 3 + words,
    }
    assert value["model"] == nemo.served_models[0]
    assert post(nemo, {"prompt": "x"}).status_code == 307


def test_nemo_deploy_ray_finish_reason_counts_characters(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.openai_profile = "nemo-deploy-ray"
    engine.script("abcdefghij")  # 10 characters, fewer tokens
    choice = post(nemo, {"prompt": "x", "max_tokens": 10}, "/v1/completions/").json()["choices"][0]
    assert choice["finish_reason"] == "length"


def test_nemo_deploy_ray_refuses_a_prompt_list_and_lists_its_model(nemo: NeMoServer) -> None:
    nemo.openai_profile = "nemo-deploy-ray"
    refused = post(nemo, {"prompt": ["a", "b"]}, "/v1/completions/")
    assert refused.status_code == 500
    assert refused.json()["detail"].startswith("Error during inference: ")
    models = requests.get(nemo.base_url + "/v1/models", timeout=5).json()
    assert set(models["data"][0]) == {"id", "object", "created"}


# -- NeMo's Flask server --------------------------------------------------------------------


def test_nemo_flask_reads_end_strings_not_stop(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    nemo.openai_profile = "nemo-flask"
    engine.script("one STOP two")
    ignored = post(nemo, {"prompt": "a b", "stop": ["STOP"], "stream": True, "max_tokens": 50})
    assert ignored.headers["Content-Type"] == "application/json"
    assert ignored.json()["choices"][0]["text"].endswith("two")
    engine.script("one STOP two")
    value = post(nemo, {"prompt": "a b", "end_strings": ["STOP"], "max_tokens": 50}).json()
    assert set(value) == {"choices", "created", "id", "model", "object", "usage"}
    choice = value["choices"][0]
    assert set(choice) == {"finish_reason", "index", "logprobs", "text", "tokens"}
    assert (choice["finish_reason"], value["model"]) == ("", "nemo model")
    assert choice["text"] == "one STOP"  # the end string stays in the decoded text
    assert value["usage"]["prompt_tokens"] == 2
    assert value["usage"]["completion_tokens"] == 2


def test_nemo_flask_refusals_and_missing_routes(nemo: NeMoServer) -> None:
    nemo.openai_profile = "nemo-flask"
    refused = post(nemo, {"prompt": ["a", "b"]})
    assert (refused.status_code, refused.json()) == (500, {"message": "Internal Server Error"})
    models = requests.get(nemo.base_url + "/v1/models", timeout=5)
    assert models.status_code == 404
    assert models.headers["Content-Type"].startswith("text/html")
    assert post(nemo, {"prompt": "x"}, "/v1/completions/").status_code == 404


def test_nemo_routes_stay_under_every_profile(nemo: NeMoServer) -> None:
    for name in openai_profiles.PROFILE_NAMES:
        nemo.openai_profile = name
        answer = requests.put(nemo.base_url + "/generate", json={"sentences": ["x"]}, timeout=5)
        assert answer.status_code == 200, name


def test_cli_lists_the_profiles() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "steerlm.server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in openai_profiles.PROFILE_NAMES:
        assert name in result.stdout

"""The engine profiles' request bodies and detection, as pure functions (issue 17).

What each engine takes is cited in :mod:`steerlm.transports.engines` and
docs/dev/engine-facts.md; these tests pin the client's side of it. The same behaviours
against the dev server's imitation of each engine are in tests/core/test_engines.py.
"""

from __future__ import annotations

import pytest

from steerlm import SteerLMInputError
from steerlm.options import END_OF_TEXT, GenerationOptions
from steerlm.transports.engines import (
    ENGINES,
    MAX_STOP_STRINGS,
    Constraint,
    detect_engine,
    server_stops,
)
from steerlm.transports.openai import OpenAIClient

# Every key of TensorRT-LLM's CompletionRequest (NVIDIA/TensorRT-LLM@0076e939:
# tensorrt_llm/serve/openai_protocol.py, extra="forbid"): anything else is a 400.
TRTLLM_FIELDS = {
    "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
    "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options",
    "suffix", "temperature", "top_p", "user", "lora_request", "prompt_ignore_length",
    "use_beam_search", "top_k", "top_p_min", "min_p", "repetition_penalty",
    "length_penalty", "early_stopping", "stop_token_ids", "include_stop_str_in_output",
    "ignore_eos", "min_tokens", "skip_special_tokens", "spaces_between_special_tokens",
    "truncate_prompt_tokens", "return_context_logits", "detokenize",
    "thinking_token_budget", "add_special_tokens", "response_format",
    "disaggregated_params", "priority", "conversation_params",
}  # fmt: skip
STOPS = ("<extra_id_1>", "MINE", "quality:", "quality:9", "quality:0", "<extra_id_2>", END_OF_TEXT)
EVERYTHING = GenerationOptions().replace(
    {
        "temperature": 0.7,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "min_tokens": 2,
        "random_seed": 7,
        "logprobs": True,
    }
)
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def test_server_stops_drop_end_of_text_and_repeats_and_keep_the_first_four() -> None:
    # quality:9 and quality:0 hold quality:, which stops first: <extra_id_2> makes the four.
    assert server_stops(STOPS) == ["<extra_id_1>", "MINE", "quality:", "<extra_id_2>"]
    assert server_stops(("a", "a", END_OF_TEXT, "b"), None) == ["a", "b"]
    assert server_stops(("x1", "x", "y", "z", "w", "v")) == ["x", "y", "z", "w"]
    assert MAX_STOP_STRINGS == 4


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_body_keeps_to_its_engines_stop_limit(name: str) -> None:
    profile = ENGINES[name]
    body = profile.body("m", ["p"], EVERYTHING, STOPS, stream=True)
    sent = body.get(profile.stop_key) if profile.stop_key else None
    if profile.stop_key is None:
        assert "stop" not in body and "end_strings" not in body
    elif profile.max_stops is not None:
        assert sent is not None and len(sent) <= profile.max_stops
    assert END_OF_TEXT not in (sent or [])
    assert ("stream" in body) == profile.streams


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("constrained", [False, True])
def test_trtllm_bodies_use_only_fields_of_its_completion_request(
    stream: bool, constrained: bool
) -> None:
    constraint = Constraint(SCHEMA, "answer") if constrained else None
    body = ENGINES["trtllm"].body(
        "m", ["p", "q"], EVERYTHING, STOPS, stream=stream, constraint=constraint
    )
    assert set(body) <= TRTLLM_FIELDS
    if constrained:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": SCHEMA},
        }


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("vllm", "structured_outputs", {"json": SCHEMA}),
        ("nim", "nvext", {"guided_json": SCHEMA}),
        ("llamacpp", "json_schema", SCHEMA),
    ],
)
def test_each_engine_gets_its_own_constraint_key_and_no_other(
    name: str, key: str, value: object
) -> None:
    body = ENGINES[name].body("m", ["p"], EVERYTHING, STOPS, constraint=Constraint(SCHEMA))
    assert body[key] == value
    others = {"structured_outputs", "nvext", "json_schema", "response_format", "guided_json"}
    assert not (others - {key}) & set(body)


@pytest.mark.parametrize("name", ["generic", "nemo-deploy", "nemo-deploy-ray", "nemo-flask"])
def test_engines_without_constrained_decoding_get_no_schema_key(name: str) -> None:
    body = ENGINES[name].body("m", ["p"], EVERYTHING, STOPS, constraint=Constraint(SCHEMA))
    assert not {"structured_outputs", "nvext", "json_schema", "response_format"} & set(body)


@pytest.mark.parametrize("name", ["nemo-deploy", "nemo-deploy-ray"])
@pytest.mark.parametrize(
    ("options", "top_p"),
    [
        (GenerationOptions(), 0.0),  # greedy: temperature 0 and top_p 0 make top_k 1
        (
            GenerationOptions().replace({"temperature": 0.7, "top_k": 40}),
            0.0,
        ),  # both > 0 is a 500 there
        (
            GenerationOptions().replace({"temperature": 0.7, "top_p": 1.0}),
            0.0,
        ),  # 1.0 is "off" elsewhere
        (GenerationOptions().replace({"temperature": 0.7, "top_p": 0.9}), 0.9),
    ],
)
def test_export_deploy_never_gets_top_k_and_top_p_both_above_zero(
    name: str, options: GenerationOptions, top_p: float
) -> None:
    body = ENGINES[name].body("m", ["p"], options, STOPS)
    assert body["top_p"] == top_p
    assert not (body.get("top_k", 0) > 0 and body["top_p"] > 0)
    assert "seed" not in body and "min_tokens" not in body and "repetition_penalty" not in body


def test_nemo_flask_gets_end_strings_not_stop() -> None:
    body = ENGINES["nemo-flask"].body("m", ["p"], EVERYTHING, STOPS)
    assert "stop" not in body
    # It adds <|endoftext|> itself; quality:9 and quality:0 hold quality: (no need).
    assert body["end_strings"] == ["<extra_id_1>", "MINE", "quality:", "<extra_id_2>"]


def test_llamacpp_gets_its_own_repetition_key() -> None:
    body = ENGINES["llamacpp"].body("m", ["p"], EVERYTHING, STOPS)
    assert body["repeat_penalty"] == 1.1 and "repetition_penalty" not in body


@pytest.mark.parametrize(
    ("listing", "missing", "engine"),
    [
        ({"data": [{"id": "m", "owned_by": "vllm", "max_model_len": 2048}]}, None, "vllm"),
        ({"data": [{"id": "m", "owned_by": "tensorrt_llm"}]}, None, "trtllm"),
        ({"data": [{"id": "m", "owned_by": "llamacpp"}]}, None, "llamacpp"),
        ({"data": [{"id": "m", "owned_by": "me"}]}, None, "generic"),  # llama-cpp-python
        ({"data": [{"id": "m", "object": "model", "created": 1}]}, None, "nemo-deploy-ray"),
        ({"data": []}, None, "generic"),
        (None, '{"detail":"Not Found"}', "nemo-deploy"),
        (None, "<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>", "nemo-flask"),
        (None, '{"error": {"message": "nope"}}', "generic"),
    ],
)
def test_detection_from_what_the_server_shows(
    listing: dict[str, object] | None, missing: str | None, engine: str
) -> None:
    assert detect_engine(listing, model="m", missing=missing).name == engine


def test_an_unknown_engine_is_refused_before_any_request() -> None:
    with pytest.raises(SteerLMInputError, match="Did you mean 'vllm'"):
        OpenAIClient("http://127.0.0.1:9/v1", engine="vlm")
    with pytest.raises(SteerLMInputError, match="leave engine='auto'"):
        from steerlm.transports.nemo import SteerLMClient

        SteerLMClient("http://127.0.0.1:9", engine="vllm")


def test_a_named_engine_without_models_needs_a_model_name() -> None:
    client = OpenAIClient("http://127.0.0.1:9/v1", engine="nemo-deploy", max_retries=0)
    with pytest.raises(SteerLMInputError, match="pass model="):
        client.generate(["p"], GenerationOptions(), [])


def test_nemo_flask_gets_a_fresh_seed_for_each_sampled_answer() -> None:
    # It seeds 1234 when none is sent: best of n there would be n copies of one answer.
    sampling = GenerationOptions().replace({"temperature": 0.7})
    seeds = {ENGINES["nemo-flask"].body("m", ["p"], sampling, STOPS)["seed"] for _ in range(5)}
    assert len(seeds) > 1
    assert "seed" not in ENGINES["nemo-flask"].body("m", ["p"], GenerationOptions(), STOPS)

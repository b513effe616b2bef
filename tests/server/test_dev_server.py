"""The dev server on the real small model (llama.cpp), through HTTP, in its own process."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from steerlm.presets import get_preset
from steerlm.prompt import build_prompt
from steerlm.server.llama_engine import (
    LlamaEngine,
    ModelFileError,
    converted_model,
    embedded_model_path,
)
from steerlm.server.process import dev_server
from steerlm.server.protocol import GenerateParams
from steerlm.types import Turn

pytestmark = pytest.mark.integration

PROMPT = (
    "<extra_id_0>System\nA chat between a curious user and an artificial intelligence "
    "assistant.\n<extra_id_1>User\nWhat is the capital of France?\n<extra_id_1>Assistant\n"
    "<extra_id_2>quality:9,toxicity:0,humor:0,creativity:0,violence:0,helpfulness:9,not_appropriate:0\n"
)


def generate(url: str, **body: Any) -> Any:
    body.setdefault("sentences", [PROMPT])
    response = requests.put(f"{url}/generate", json=body, timeout=60)
    response.raise_for_status()
    return response.json()


def test_greedy_answers_are_identical(raw_server_url: str) -> None:
    first = generate(raw_server_url, tokens_to_generate=24, greedy=True)
    second = generate(raw_server_url, tokens_to_generate=24, greedy=True)
    assert first["sentences"] == second["sentences"]
    assert first["sentences"][0].startswith(PROMPT)
    assert len(first["sentences"][0]) > len(PROMPT)


def test_seeded_sampling_repeats_and_seeds_differ(raw_server_url: str) -> None:
    runs = [
        generate(
            raw_server_url, tokens_to_generate=16, temperature=1.0, top_p=1.0, random_seed=seed
        )["sentences"][0]
        for seed in (7, 7, 8)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_stop_string_ends_generation_early_and_stays_in_the_text(raw_server_url: str) -> None:
    full = generate(
        raw_server_url, tokens_to_generate=32, greedy=True, end_strings=["<|endoftext|>"]
    )
    continuation = full["sentences"][0][len(PROMPT) :]
    words = continuation.split()
    assert len(words) >= 4, continuation
    stop = words[2]
    cut = generate(raw_server_url, tokens_to_generate=32, greedy=True, end_strings=[stop])
    sentence = cut["sentences"][0]
    assert sentence.endswith(stop)
    assert len(cut["tokens"][0]) < len(full["tokens"][0])


def test_tokens_and_offsets_agree_with_the_sentence(raw_server_url: str) -> None:
    answer = generate(raw_server_url, tokens_to_generate=12, greedy=True)
    sentence, tokens, offsets = answer["sentences"][0], answer["tokens"][0], answer["offsets"][0]
    assert len(tokens) == len(offsets) == len(answer["token_ids"][0])
    assert "".join(tokens) == sentence
    assert all(
        sentence[offset:].startswith(token) for token, offset in zip(tokens, offsets, strict=True)
    )


def test_logprobs_are_real_negative_numbers(raw_server_url: str) -> None:
    answer = generate(raw_server_url, tokens_to_generate=8, greedy=True, compute_logprob=True)
    logprobs = answer["logprob"][0]
    assert len(logprobs) == 8
    assert all(value <= 0 and math.isfinite(value) for value in logprobs)
    assert any(value < -1e-4 for value in logprobs)
    assert generate(raw_server_url, tokens_to_generate=2, greedy=True)["logprob"] is None


def test_several_sentences_and_min_tokens(raw_server_url: str) -> None:
    short = "The sky is"
    answer = generate(
        raw_server_url,
        sentences=[PROMPT, short],
        tokens_to_generate=6,
        min_tokens_to_generate=6,
        greedy=True,
    )
    assert len(answer["sentences"]) == 2
    assert answer["sentences"][1].startswith(short)
    prompt_tokens = sum(1 for offset in answer["offsets"][1] if offset < len(short))
    assert len(answer["tokens"][1]) - prompt_tokens == 6


def test_protocol_errors_from_the_real_server(raw_server_url: str) -> None:
    response = requests.put(
        f"{raw_server_url}/generate", json={"sentences": ["x"], "top_p": 3}, timeout=10
    )
    assert (response.status_code, response.json()) == (
        200,
        "top_p must be a positive number less than or equal to 1.0",
    )
    assert requests.put(f"{raw_server_url}/generate", json={}, timeout=10).status_code == 500


def test_nemo_1_17_switch_ignores_end_strings() -> None:
    with dev_server(
        "--nemo-version", "1.17", "--prompt-mode", "raw", "--log-level", "WARNING"
    ) as server:
        url = server.url
        full = generate(url, tokens_to_generate=20, greedy=True)
        stop = full["sentences"][0][len(PROMPT) :].split()[1]
        ignored = generate(url, tokens_to_generate=20, greedy=True, end_strings=[stop])
        assert ignored["sentences"] == full["sentences"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steerlm.server", *args], capture_output=True, text=True, timeout=60
    )


def test_an_engine_that_cannot_generate_fails_at_start_up() -> None:
    # A context too small for even the warm-up prompt: the server must not report ready.
    broken = run_cli("--ctx", "16", "--port", "0")
    assert broken.returncode == 3
    assert "warm-up generation failed" in broken.stderr
    assert "context of 16 tokens" in broken.stderr


def test_missing_or_non_gguf_model_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = run_cli("--model", str(tmp_path / "nope.gguf"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    wrong = run_cli("--model", str(fake))
    assert wrong.returncode == 2
    assert "is not a GGUF file" in wrong.stderr


QUESTIONS = (
    "Where did techno music originate?",
    "What is the capital of France?",
    "Name three colors.",
    "Why is the sky blue?",
)


def steerlm_prompt(question: str, **attributes: int) -> str:
    preset = get_preset(None)
    return build_prompt([Turn("user", question)], {**preset.defaults, **attributes}, preset)


def test_a_batch_gives_the_same_greedy_answers_as_one_by_one(raw_server_url: str) -> None:
    prompts = [steerlm_prompt(question) for question in QUESTIONS]
    together = generate(raw_server_url, sentences=prompts, tokens_to_generate=24, greedy=True)
    alone = [
        generate(raw_server_url, sentences=[prompt], tokens_to_generate=24, greedy=True)
        for prompt in prompts
    ]
    assert together["sentences"] == [answer["sentences"][0] for answer in alone]
    assert together["token_ids"] == [answer["token_ids"][0] for answer in alone]


def test_a_prompt_longer_than_the_context_is_refused_with_the_counts(
    real_server_url: str,
) -> None:
    response = requests.put(
        f"{real_server_url}/generate",
        json={"sentences": ["short", "word " * 3000], "tokens_to_generate": 4},
        timeout=60,
    )
    assert response.status_code == 200
    message = response.json()
    assert isinstance(message, str)
    assert re.search(r"prompt 1 is \d{4} tokens long", message), message
    assert "context of 2048 tokens" in message
    assert "--ctx" in message


def test_the_llama_engine_reports_its_context_window(real_server_url: str) -> None:
    health = requests.get(f"{real_server_url}/health", timeout=10).json()
    assert (health["engine"], health["context_window"]) == ("llama", 2048)  # --ctx default
    models = requests.get(f"{real_server_url}/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [("llama", 2048)]


def test_chat_mode_answers_after_the_label_line_in_nemo_shape(real_server_url: str) -> None:
    prompts = [steerlm_prompt(QUESTIONS[0], humor=humor) for humor in (0, 9)]
    answer = generate(
        real_server_url,
        sentences=prompts,
        tokens_to_generate=48,
        greedy=True,
        end_strings=["<extra_id_1>", "<|endoftext|>"],
    )
    for prompt, sentence, tokens in zip(
        prompts, answer["sentences"], answer["tokens"], strict=True
    ):
        assert sentence.startswith(prompt)
        text = sentence[len(prompt) :].removesuffix("<extra_id_1>").strip()
        assert len(text.split()) >= 3, sentence  # a visible answer, not a new label line
        assert "<extra_id" not in text and "<|im_" not in text
        assert "".join(tokens) == sentence
    assert answer["sentences"][0] != answer["sentences"][1]  # the humor instruction counts


def test_chat_mode_ends_the_turn_with_the_marker_a_steerlm_model_writes(
    real_server_url: str,
) -> None:
    prompt = steerlm_prompt(QUESTIONS[1])
    answer = generate(
        real_server_url,
        sentences=[prompt],
        tokens_to_generate=200,
        greedy=True,
        end_strings=["<extra_id_1>", "<|endoftext|>"],
    )
    assert answer["sentences"][0].endswith("<extra_id_1>")
    assert answer["sentences"][0][len(prompt) : -len("<extra_id_1>")].strip()


def test_chat_mode_passes_plain_completion_text_through_raw(real_server_url: str) -> None:
    answer = generate(real_server_url, sentences=["The sky is"], tokens_to_generate=4, greedy=True)
    assert answer["sentences"][0].startswith("The sky is")


def test_the_engine_stops_when_cancelled() -> None:
    engine = LlamaEngine(prompt_mode="raw", parallel=2)
    checks = []

    def cancelled() -> bool:
        checks.append(1)
        return len(checks) > 5

    generations = engine.generate(
        [PROMPT, PROMPT],
        GenerateParams(tokens_to_generate=500, greedy=True, end_strings=()),
        cancelled=cancelled,
    )
    assert all(g.generated_tokens < 10 for g in generations)


def test_the_weights_are_converted_once_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = embedded_model_path()
    converted = converted_model(source, "q8_0")
    assert converted.parent == tmp_path / "steerlm-integrations" / "models"
    assert converted.read_bytes()[:4] == b"GGUF"
    made = converted.stat().st_mtime_ns
    assert converted_model(source, "q8_0") == converted
    assert converted.stat().st_mtime_ns == made  # reused, not converted again
    assert [p.name for p in converted.parent.iterdir()] == [converted.name]  # no leftovers
    with pytest.raises(ValueError, match="weights must be one of"):
        converted_model(source, "q2_k")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # not a folder
    with pytest.raises(ModelFileError, match="XDG_CACHE_HOME"):
        converted_model(source, "q8_0")


def test_chat_mode_never_generates_more_than_tokens_to_generate(real_server_url: str) -> None:
    prompt = steerlm_prompt(QUESTIONS[1], humor=9)
    ends = ["<extra_id_1>", "<|endoftext|>"]

    def generated(budget: int) -> tuple[int, str]:
        answer = generate(
            real_server_url,
            sentences=[prompt],
            tokens_to_generate=budget,
            greedy=True,
            end_strings=ends,
        )
        prompt_tokens = sum(1 for offset in answer["offsets"][0] if offset < len(prompt))
        return len(answer["tokens"][0]) - prompt_tokens, answer["sentences"][0]

    natural, sentence = generated(200)
    assert sentence.endswith("<extra_id_1>")
    for budget in (natural - 3, natural - 1, natural):
        count, _ = generated(budget)
        assert count <= budget  # the turn marker counts against the budget

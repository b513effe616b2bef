"""What each OpenAI-compatible engine takes and answers: one profile per engine.

``api="openai"`` reaches many servers that share OpenAI's ``/completions`` shape but differ
in the details: how many stop strings they take, whether they stream, take prompt lists,
count usage in tokens, name the finish reason, route ``/completions`` with a trailing
slash, or constrain decoding to a JSON schema (and under which key). Each difference is
one field of an :class:`EngineProfile`; :class:`~steerlm.transports.openai.OpenAIClient`
reads the profile and never tests which engine it talks to.

The ``engine`` setting names a profile, or is ``"auto"``: the client then learns it once
from ``GET /models`` (:func:`detect_engine`): the ``owned_by`` of the listed model, or
the shape of a 404 where a server has no such route. Anything else is ``"generic"``.

Sources (read at the refs below; facts and line numbers in docs/dev/engine-facts.md):

- vLLM 0.32: ``vllm/entrypoints/openai/completion/protocol.py`` (``CompletionRequest``,
  ``structured_outputs``), ``StopParam`` capped by ``VLLM_MAX_STOP_STRINGS`` = 4,
  ``ModelCard.owned_by = "vllm"``; run for real in ``make test-vllm``.
- TensorRT-LLM: ``tensorrt_llm/serve/openai_protocol.py`` at 0076e939 (``extra="forbid"``:
  only ``CompletionRequest``'s fields may be sent; ``response_format``;
  ``owned_by = "tensorrt_llm"``); read only.
- NIM for LLMs 1.x: ``nvext.guided_json`` (docs.nvidia.com structured-generation pages);
  read only, ``owned_by`` unverified.
- llama.cpp ``llama-server``: ``json_schema`` in ``params_from_json_cmpl``,
  ``owned_by = "llamacpp"``; run in the integration tier through llama-cpp-python's
  server, whose ``owned_by`` is ``"me"`` (generic).
- NVIDIA-NeMo/Export-Deploy@914daa6: ``fastapi_interface_to_pytriton.py`` (``nemo-deploy``)
  and ``megatronllm_deployable_ray.py`` (``nemo-deploy-ray``); read only.
- NVIDIA/NeMo@v2.5.0rc0 ``text_generation_server.py`` (``nemo-flask``); read only.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from steerlm.options import END_OF_TEXT, GenerationOptions

__all__ = [
    "AUTO",
    "ENGINES",
    "MAX_STOP_STRINGS",
    "Constraint",
    "EngineProfile",
    "detect_engine",
    "server_stops",
]

#: The ``engine`` value that learns the engine from the server.
AUTO = "auto"
#: Most stop strings OpenAI's API (and vLLM, which enforces it) takes in one request.
MAX_STOP_STRINGS = 4

ConstraintKey = Literal["structured_outputs", "response_format", "nvext", "json_schema"]
UsageUnit = Literal["tokens", "words", "none"]
# Optional request keys; an engine's profile lists those it reads.
OptionalKey = Literal[
    "seed", "logprobs", "top_k", "repetition_penalty", "repeat_penalty", "min_tokens"
]
#: The optional keys of vLLM's ``CompletionRequest``, which TensorRT-LLM's shares.
OPENAI_KEYS: frozenset[OptionalKey] = frozenset(
    {"seed", "logprobs", "top_k", "repetition_penalty", "min_tokens"}
)


@dataclass(frozen=True)
class Constraint:
    """Decoding constrained to a JSON schema, on engines that can (structured output,
    forced tool calls).

    Attributes:
        schema: The JSON schema the answer must match.
        name: A name for the schema (TensorRT-LLM's ``json_schema.name``).
        tool_call: The answer is a tool call (``{"name", "arguments"}``), not content.
    """

    schema: Mapping[str, Any]
    name: str = "answer"
    tool_call: bool = False


@dataclass(frozen=True)
class EngineProfile:
    """What one engine takes and answers on ``POST /completions``.

    Attributes:
        name: The ``engine`` value that selects it.
        summary: The engine, as the docs and errors name it.
        owned_by: ``owned_by`` values of ``GET /models`` that identify it.
        route: The completions path under ``base_url``.
        lists_models: It serves ``GET /models``.
        stop_key: The request key of stop strings; None: it takes none (cut on the client).
        max_stops: Most stop strings it takes; None: no limit.
        prompt_lists: It takes a prompt list (True), never (False), or unknown (None:
            learnt on the first batch).
        streams: It streams server-sent events for ``stream: true``.
        usage: What ``usage`` counts: tokens, whitespace-separated words, or nothing.
        finish_reasons: Its ``finish_reason`` can be trusted.
        reports_model: The ``model`` of its answers names the served model.
        keys: The optional sampling keys it reads.
        exclusive_top_k_top_p: It fails when ``top_k`` and ``top_p`` are both above 0
            (Export-Deploy), so nucleus sampling is turned off when ``top_k`` is set.
        fixed_default_seed: It samples with one fixed seed when none is sent (NeMo's
            Flask app: 1234), so every sampled answer would be the same: a fresh seed is
            sent with each sampling request.
        constraint_key: Where a JSON schema goes; None: it has no constrained decoding
            (the schema is only asked for in the prompt).
        verified: How it was checked: ``"run"`` (the real server ran in the tests) or
            ``"read"`` (its source was read and is imitated by the dev server).
    """

    name: str
    summary: str
    owned_by: tuple[str, ...] = ()
    route: str = "/completions"
    lists_models: bool = True
    stop_key: str | None = "stop"
    max_stops: int | None = MAX_STOP_STRINGS
    prompt_lists: bool | None = None
    streams: bool = True
    usage: UsageUnit = "tokens"
    finish_reasons: bool = True
    reports_model: bool = True
    keys: frozenset[OptionalKey] = OPENAI_KEYS
    exclusive_top_k_top_p: bool = False
    fixed_default_seed: bool = False
    constraint_key: ConstraintKey | None = None
    verified: Literal["run", "read"] = "read"

    def body(
        self,
        model: str,
        prompts: Sequence[str],
        options: GenerationOptions,
        stops: Sequence[str],
        *,
        stream: bool = False,
        constraint: Constraint | None = None,
    ) -> dict[str, Any]:
        """The JSON body of ``POST {route}`` for this engine: only keys it reads.

        Greedy decoding is ``temperature: 0``. Stop strings go under :attr:`stop_key`,
        at most :attr:`max_stops` of them (:func:`server_stops`); every stop string is
        applied again on the client.
        """
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompts[0] if len(prompts) == 1 else list(prompts),
            "max_tokens": options.max_tokens,
            "temperature": 0 if options.greedy else options.temperature,
            "top_p": options.top_p,
        }
        keys = self.keys
        # Export-Deploy: top_p 0 with temperature 0 is its greedy (top_k becomes 1); top_p
        # 1.0 means "off" elsewhere, 0 there; and top_k > 0 with top_p > 0 fails.
        if self.exclusive_top_k_top_p and (options.greedy or options.top_k or options.top_p >= 1.0):
            body["top_p"] = 0.0
        if self.stop_key is not None:
            body[self.stop_key] = server_stops(stops, self.max_stops)
        if options.random_seed is not None and "seed" in keys:
            body["seed"] = options.random_seed
        elif self.fixed_default_seed and not options.greedy:
            body["seed"] = random.randrange(2**31)
        if options.logprobs and "logprobs" in keys:
            body["logprobs"] = 1  # the completions API's number of alternatives per token
        if options.top_k and "top_k" in keys:
            body["top_k"] = options.top_k
        if options.repetition_penalty != 1.0:
            for key in ("repetition_penalty", "repeat_penalty"):
                if key in keys:
                    body[key] = options.repetition_penalty
        if options.min_tokens and "min_tokens" in keys:
            body["min_tokens"] = options.min_tokens
        if stream and self.streams:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if constraint is not None and self.constraint_key is not None:
            body.update(self.constraint_body(constraint))
        return body

    def constraint_body(self, constraint: Constraint) -> dict[str, Any]:
        """The request keys that constrain decoding to ``constraint``'s schema."""
        schema = dict(constraint.schema)
        if self.constraint_key == "structured_outputs":  # vLLM >= 0.10
            return {"structured_outputs": {"json": schema}}
        if self.constraint_key == "response_format":  # TensorRT-LLM
            wrapped = {"name": constraint.name, "schema": schema}
            return {"response_format": {"type": "json_schema", "json_schema": wrapped}}
        if self.constraint_key == "nvext":  # NIM for LLMs 1.x
            return {"nvext": {"guided_json": schema}}
        if self.constraint_key == "json_schema":  # llama.cpp's llama-server
            return {"json_schema": schema}
        return {}


def server_stops(stops: Sequence[str], limit: int | None = MAX_STOP_STRINGS) -> list[str]:
    """The stop strings to send: the first ``limit`` of ``stops`` that matter.

    Dropped first: ``<|endoftext|>`` (these engines stop at end of sequence themselves),
    repeats, and a stop that holds another one (``quality:9`` holds ``quality:``, which
    stops the answer first), so that a cap of four keeps the 13B preset's
    ``<extra_id_2>``. ``stops`` comes most important first (the turn marker, the caller's
    stops, the preset's others; see :func:`steerlm.options.end_strings`), so a cap drops
    the least useful; the client cuts at every one of them anyway.
    """
    unique = [stop for stop in dict.fromkeys(stops) if stop and stop != END_OF_TEXT]
    kept = [s for s in unique if not any(o != s and o in s for o in unique)]
    return kept if limit is None else kept[:limit]


#: Every engine profile by ``engine`` name.
ENGINES: dict[str, EngineProfile] = {
    profile.name: profile
    for profile in (
        EngineProfile("generic", "an OpenAI-compatible server"),
        EngineProfile(
            "vllm",
            "vLLM",
            owned_by=("vllm",),
            prompt_lists=True,
            constraint_key="structured_outputs",
            verified="run",
        ),
        EngineProfile(
            "trtllm",
            "TensorRT-LLM (trtllm-serve)",
            owned_by=("tensorrt_llm",),
            max_stops=None,
            prompt_lists=True,
            constraint_key="response_format",
        ),
        EngineProfile(
            "nim",
            "NVIDIA NIM for LLMs",
            # As NIM for VLMs 1.x documents it; unverified for NIM for LLMs.
            owned_by=("system",),
            prompt_lists=True,
            keys=frozenset({"seed", "logprobs", "top_k", "repetition_penalty"}),
            constraint_key="nvext",
        ),
        EngineProfile(
            "llamacpp",
            "llama.cpp (llama-server)",
            owned_by=("llamacpp",),
            max_stops=None,
            keys=frozenset({"seed", "logprobs", "top_k", "repeat_penalty"}),
            constraint_key="json_schema",
        ),
        EngineProfile(
            "nemo-deploy",
            "NeMo 2.x Export-Deploy's PyTriton FastAPI service",
            route="/completions/",
            lists_models=False,
            stop_key=None,
            prompt_lists=False,
            streams=False,
            usage="none",
            finish_reasons=False,
            keys=frozenset({"logprobs", "top_k"}),
            exclusive_top_k_top_p=True,
        ),
        EngineProfile(
            "nemo-deploy-ray",
            "NeMo 2.x Export-Deploy's Ray Serve deployment",
            route="/completions/",
            max_stops=None,
            prompt_lists=False,
            streams=False,
            usage="words",
            finish_reasons=False,
            keys=frozenset({"logprobs", "top_k"}),
            exclusive_top_k_top_p=True,
        ),
        EngineProfile(
            "nemo-flask",
            "NeMo's Flask text_generation_server (/v1/completions beside PUT /generate)",
            lists_models=False,
            stop_key="end_strings",
            max_stops=None,
            prompt_lists=False,
            streams=False,
            usage="words",
            finish_reasons=False,
            reports_model=False,
            keys=frozenset({"seed", "logprobs", "top_k"}),
            fixed_default_seed=True,  # v2.5.0rc0 text_generation_server.py#L96-L114: 1234
        ),
    )
}
#: ``owned_by`` value of ``GET /models`` -> engine name.
_BY_OWNER = {owner: p.name for p in ENGINES.values() for owner in p.owned_by}


def detect_engine(
    listing: Mapping[str, Any] | None, *, model: str | None = None, missing: str | None = None
) -> EngineProfile:
    """The engine behind a server, from what ``GET /models`` showed.

    Args:
        listing: The ``/models`` answer, or None when there was none.
        model: The model name in use, to read its own entry of the listing.
        missing: The body of a 404 answer to ``GET /models`` (the server has no such
            route): FastAPI's ``{"detail": "Not Found"}`` is Export-Deploy's PyTriton
            service, Flask's HTML page is NeMo's own server.
    """
    if missing is not None:
        return ENGINES[_engine_without_models(missing)]
    entries = listing.get("data") if listing else None
    models = [m for m in entries if isinstance(m, dict)] if isinstance(entries, list) else []
    ours = [m for m in models if m.get("id") == model] or models[:1]
    if not ours:
        return ENGINES["generic"]
    if "owned_by" not in ours[0]:
        return ENGINES["nemo-deploy-ray"]  # the one /models without owned_by seen
    return ENGINES[_BY_OWNER.get(str(ours[0]["owned_by"]), "generic")]


def _engine_without_models(body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if parsed == {"detail": "Not Found"}:
        return "nemo-deploy"
    if "<title>404 Not Found</title>" in body:  # Flask's (Werkzeug's) 404 page
        return "nemo-flask"
    return "generic"

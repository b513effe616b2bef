"""Profiles of the dev server's ``/v1`` routes: each imitates one real OpenAI-style engine.

A profile is data plus a few small hooks: which paths the engine routes (and whether a
path with the other trailing slash is a ``307`` to it, as Starlette's ``redirect_slashes``
does for every FastAPI app), which request keys it accepts and how it refuses the others,
where it reads stop strings, whether it streams, which fields its answer has, what its
``usage`` counts, and the shape of its errors and of ``GET /v1/models``. The routes in
:mod:`steerlm.server.openai_routes` read the profile of the server
(``NeMoServer.openai_profile``, ``--openai-profile``); ``"steerlm"``, the default, is the
dev server's own behaviour.

Every imitated behaviour cites the source it was read from: ``owner/repo@ref:path#Lx``
where a tagged or pinned snapshot was read, or the repository, file, symbol and "index
copy" where only the search index's stored version was (vLLM, TensorRT-LLM and llama.cpp
are over the snapshot size limit; see ``docs/dev/engine-facts.md``). Nothing here is
copied code: the shapes are written out from reading.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from steerlm.server.exchange import Exchange
from steerlm.server.service import BadBody

#: The dev server's own behaviour (every test written before the profiles assumes it).
DEFAULT_PROFILE = "steerlm"


@dataclass(frozen=True)
class Reply:
    """An answer a profile gives instead of a generation: status, then JSON or raw text."""

    status: int
    value: Any = None
    text: str | None = None
    content_type: str = "application/json"

    def send(self, exchange: Exchange) -> None:
        """Answer ``exchange`` with this reply."""
        if self.text is None:
            exchange.send_json(self.status, self.value)
        else:
            exchange.send_raw(self.status, self.text.encode(), self.content_type)


#: Refuses a request body (a :class:`Reply`), or lets it through (None).
Check = Callable[[dict[str, Any]], "Reply | None"]
#: An error answer from (HTTP status, message, OpenAI-style error type or None).
ErrorShape = Callable[[int, str, "str | None"], Reply]
#: ``GET /v1/models``'s answer from (model names, context window, unix time).
ModelsShape = Callable[[list[str], int, int], Any]


# -- error shapes ---------------------------------------------------------------------------


def openai_error(status: int, message: str, kind: str | None = None) -> Reply:
    """vLLM's error object ``{"error": {message, type, param, code}}``.

    vLLM ``ErrorResponse``/``ErrorInfo`` (vllm-project/vllm, index copy of
    ``vllm/entrypoints/openai/engine/protocol.py``; ``create_error_response`` in
    ``vllm/entrypoints/serve/utils/error_response.py``, index copy f389ba78).
    """
    error = {"message": message, "type": kind or "BadRequestError", "param": None, "code": status}
    return Reply(status, {"error": error})


def trtllm_error(status: int, message: str, kind: str | None = None) -> Reply:
    """TensorRT-LLM's flat error ``{"object": "error", message, type, param, code}``.

    ``class ErrorResponse`` in NVIDIA/TensorRT-LLM ``tensorrt_llm/serve/openai_protocol.py``
    (index copy 0076e939); sent by ``OpenAIServer.create_error_response`` in
    ``tensorrt_llm/serve/openai_server.py`` (index copy 00057725) for errors raised while
    answering (not for request validation: see :func:`_trtllm_check`).
    """
    value = {
        "object": "error",
        "message": message,
        "type": kind or "BadRequestError",
        "param": None,
        "code": status,
    }
    return Reply(status, value)


def llamacpp_error(status: int, message: str, kind: str | None = None) -> Reply:
    """llama.cpp server's ``{"error": {code, message, type}}`` (types are its own words).

    ``format_error_response`` in ggml-org/llama.cpp ``tools/server/server-common.cpp``
    (index copy): ``invalid_request_error`` (400), ``not_found_error`` (404),
    ``authentication_error`` (401), ``server_error`` (500).
    """
    kinds = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
    error = {"code": status, "message": message, "type": kinds.get(status, "server_error")}
    return Reply(status, {"error": error})


def fastapi_500(status: int, message: str, kind: str | None = None) -> Reply:
    """An exception FastAPI's route did not handle: Starlette's plain-text 500.

    Export-Deploy's PyTriton proxy catches nothing around the Triton query
    (NVIDIA-NeMo/Export-Deploy@914daa6:nemo_deploy/service/fastapi_interface_to_pytriton.py#L225-L263),
    so any failure is Starlette's ``ServerErrorMiddleware`` answer (checked on FastAPI 0.165).
    """
    return Reply(500, text="Internal Server Error", content_type="text/plain; charset=utf-8")


def ray_error(status: int, message: str, kind: str | None = None) -> Reply:
    """The Ray route's ``HTTPException(500, detail="Error during inference: ...")``.

    NVIDIA-NeMo/Export-Deploy@914daa6:nemo_deploy/llm/megatronllm_deployable_ray.py#L446-L448.
    """
    return Reply(500, {"detail": f"Error during inference: {message}"})


def flask_500(status: int, message: str, kind: str | None = None) -> Reply:
    """flask-restful's JSON 500 for an exception in a resource (as ``nemo_routes`` answers).

    Any failure inside ``MegatronGenerate.completion`` (NVIDIA/NeMo@v2.5.0rc0:
    nemo/collections/nlp/modules/common/text_generation_server.py#L96-L164) is unhandled.
    """
    return Reply(500, {"message": "Internal Server Error"})


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """``N validation error(s):`` then one repr per error, as FastAPI's ``str(exc)`` starts.

    FastAPI's ``RequestValidationError.__str__`` (checked on FastAPI 0.165) then adds the
    endpoint's file and line, which vLLM drops (``validation_exception_handler``) and which
    names the real server's paths; left out here.
    """
    label = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {label}:\n" + "".join(f"  {e!r}\n" for e in errors).rstrip()


# -- request checks -------------------------------------------------------------------------

#: vLLM's default ``VLLM_MAX_STOP_STRINGS``.
VLLM_MAX_STOP_STRINGS = 4


def _vllm_check(body: dict[str, Any]) -> Reply | None:
    """vLLM 0.32's 400 for more than 4 stop strings, as its validation handler words it.

    The limit: ``StopParam = str | Annotated[list[str], Field(max_length=
    envs.VLLM_MAX_STOP_STRINGS)] | None`` (vllm-project/vllm, index copy 022e555d of
    ``vllm/entrypoints/generate/base/protocol.py``; seen on the real 0.32.0 in issue 17:
    ``'body.stop': List should have at most 4 items after validation, not 6``). Pydantic
    reports both branches of the union, ``str`` first (checked with pydantic 2.14). The
    answer: ``validation_exception_handler`` (index copy 0753ceeb of
    ``vllm/entrypoints/serve/utils/server_utils.py``) builds ``message`` from
    ``exc.errors()`` (count line, then one line per error), ``type`` =
    ``HTTPStatus.BAD_REQUEST.phrase`` (``"Bad Request"``), ``code`` 400 and ``param`` the
    first error's ``loc`` without pydantic's branch markers (``clean_loc_for_param``).
    """
    stop = body.get("stop")
    if body.get("stream_options") and not body.get("stream"):
        # CompletionRequest.validate_stream_options (index copy 002032ee of
        # vllm/entrypoints/openai/completion/protocol.py).
        return openai_error(400, "Stream options can only be defined when `stream=True`.")
    if not isinstance(stop, list) or len(stop) <= VLLM_MAX_STOP_STRINGS:
        return None
    errors: list[dict[str, Any]] = [
        {
            "type": "string_type",
            "loc": ("body", "stop", "str"),
            "msg": "Input should be a valid string",
            "input": stop,
        },
        {
            "type": "too_long",
            "loc": ("body", "stop", "list[str]"),
            "msg": f"List should have at most {VLLM_MAX_STOP_STRINGS} items after validation, "
            f"not {len(stop)}",
            "input": stop,
            "ctx": {
                "field_type": "List",
                "max_length": VLLM_MAX_STOP_STRINGS,
                "actual_length": len(stop),
            },
        },
    ]
    error = {
        "message": _validation_message(errors),
        "type": "Bad Request",
        "param": "body.stop",
        "code": 400,
    }
    return Reply(400, {"error": error})


#: Every key ``CompletionRequest`` of TensorRT-LLM accepts; any other is a 400
#: (``OpenAIBaseModel.model_config = ConfigDict(extra="forbid")``). NVIDIA/TensorRT-LLM
#: ``tensorrt_llm/serve/openai_protocol.py`` ``class CompletionRequest``, index copy
#: 0076e939 (2026 main; no release tag could be checked out: the repository is over the
#: snapshot size limit).
TRTLLM_COMPLETION_FIELDS: frozenset[str] = frozenset(
    {
        # OpenAI's fields
        "model",
        "prompt",
        "best_of",
        "echo",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_tokens",
        "n",
        "presence_penalty",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "suffix",
        "temperature",
        "top_p",
        "user",
        "lora_request",
        "prompt_ignore_length",
        # "completion-sampling-params"
        "use_beam_search",
        "top_k",
        "top_p_min",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "early_stopping",
        "stop_token_ids",
        "include_stop_str_in_output",
        "ignore_eos",
        "min_tokens",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "truncate_prompt_tokens",
        "return_context_logits",
        "detokenize",
        "thinking_token_budget",
        # "completion-extra-params"
        "add_special_tokens",
        "response_format",
        "disaggregated_params",
        "priority",
        "conversation_params",
    }
)
# Required fields, in declaration order (pydantic reports missing ones in this order).
_TRTLLM_REQUIRED = ("model", "prompt")


def _trtllm_check(body: dict[str, Any]) -> Reply | None:
    """TensorRT-LLM's refusal of a body ``CompletionRequest`` does not validate.

    FastAPI validates the body against ``CompletionRequest`` (required ``model`` and
    ``prompt``, ``extra="forbid"``); ``OpenAIServer.__init__`` answers a
    ``RequestValidationError`` with ``JSONResponse(status_code=400, content={"error":
    str(exc)})`` (NVIDIA/TensorRT-LLM ``tensorrt_llm/serve/openai_server.py``, index copy
    00057725): a string, not the flat ``ErrorResponse``. Missing fields come first, then
    unknown keys, as pydantic orders them; ``stream_options`` without ``stream`` is its
    ``validate_stream_options`` (a ``value_error``).
    """
    errors: list[dict[str, Any]] = [
        {"type": "missing", "loc": ("body", key), "msg": "Field required", "input": body}
        for key in _TRTLLM_REQUIRED
        if key not in body
    ]
    if body.get("stream_options") and not body.get("stream"):
        errors.insert(
            0,
            {
                "type": "value_error",
                "loc": ("body",),
                "msg": "Value error, Stream options can only be defined when stream is true.",
                "input": body,
            },
        )
    errors += [
        {
            "type": "extra_forbidden",
            "loc": ("body", key),
            "msg": "Extra inputs are not permitted",
            "input": value,
        }
        for key, value in body.items()
        if key not in TRTLLM_COMPLETION_FIELDS
    ]
    return Reply(400, {"error": _validation_message(errors)}) if errors else None


def _llamacpp_check(body: dict[str, Any]) -> Reply | None:
    """llama.cpp's constrained-decoding keys: ``json_schema`` (an object) or ``grammar``.

    ``params_from_json_cmpl`` in ggml-org/llama.cpp ``tools/server/server-task.cpp`` (index
    copies): older versions refuse both at once with this message (400).
    """
    if "json_schema" in body and "grammar" in body:
        return llamacpp_error(
            400, 'Either "json_schema" or "grammar" can be specified, but not both'
        )
    if "json_schema" in body and not isinstance(body["json_schema"], dict):
        return llamacpp_error(400, '"json_schema": the schema must be a JSON object')
    if "grammar" in body and not isinstance(body["grammar"], str):
        return llamacpp_error(400, '"grammar": must be a string')
    return None


def _nim_check(body: dict[str, Any]) -> Reply | None:
    """NIM 1.x: ``nvext`` (NVIDIA's extension object) is accepted; vLLM's limits apply.

    ``nvext: {guided_json, guided_regex, guided_choice, guided_grammar, ...}``:
    https://docs.nvidia.com/nim/large-language-models/1.5.0/structured-generation.html.
    NIM for LLMs is vLLM-based (https://docs.nvidia.com/nim/large-language-models/latest/
    reference/api-reference.html), so vLLM's 4-stop cap is assumed (not verified on a NIM).
    """
    nvext = body.get("nvext")
    if nvext is not None and not isinstance(nvext, dict):
        return openai_error(400, "nvext must be an object")
    return _vllm_check(body)


def _fastapi_422(errors: list[dict[str, Any]]) -> Reply:
    """FastAPI's default answer to a body its pydantic model refuses (checked on 0.165)."""
    return Reply(422, {"detail": [{**e, "loc": list(e["loc"])} for e in errors]})


def _nemo_deploy_check(body: dict[str, Any]) -> Reply | None:
    """The PyTriton proxy's request model: ``model: str`` and ``prompt: str``, both required.

    ``BaseRequest`` (``model`` required), ``CompletionRequest.prompt: str``:
    NVIDIA-NeMo/Export-Deploy@914daa6:nemo_deploy/service/fastapi_interface_to_pytriton.py#L56-L93
    (a JSON list is a pydantic ``string_type`` error, so a 422). ``top_k > 0`` with
    ``top_p > 0`` raises ``ValueError`` in ``NemoQueryLLMPyTorch.query_llm``
    (``nemo_deploy/llm/query_llm.py#L104-L107``), unhandled: a plain-text 500.
    """
    errors = []
    for key in ("model", "prompt"):  # BaseRequest's fields come first
        if key not in body:
            errors.append(
                {"type": "missing", "loc": ("body", key), "msg": "Field required", "input": body}
            )
        elif not isinstance(body[key], str):
            errors.append(
                {
                    "type": "string_type",
                    "loc": ("body", key),
                    "msg": "Input should be a valid string",
                    "input": body[key],
                }
            )
    if errors:
        return _fastapi_422(errors)
    top_k, top_p = body.get("top_k", 0), body.get("top_p", 0.0)
    if (
        isinstance(top_k, (int, float))
        and isinstance(top_p, (int, float))
        and top_k > 0
        and top_p > 0
    ):
        return fastapi_500(500, "Cannot have top_p and top_k both greater than zero.")
    return None


def _ray_check(body: dict[str, Any]) -> Reply | None:
    """The Ray route takes any dict; a prompt list fails with a 500.

    ``request["prompts"] = [request["prompt"]]`` nests a list (#L361-L362), which reaches
    mcore as one prompt; whichever fails first, mcore on a list or the word count
    ``len(p.split())`` (#L396), the route's ``except`` answers ``HTTPException(500,
    "Error during inference: ...")`` (#L446-L448):
    NVIDIA-NeMo/Export-Deploy@914daa6:nemo_deploy/llm/megatronllm_deployable_ray.py.
    The reason text is the word count's (what mcore would say first is not verified).
    """
    if isinstance(body.get("prompt"), list):
        return ray_error(500, "'list' object has no attribute 'split'")
    return None


def _flask_check(body: dict[str, Any]) -> Reply | None:
    """NeMo's Flask ``/v1/completions`` needs one prompt string; anything else is a 500.

    ``prompt = data["prompt"]`` (a KeyError if absent), then ``generate(self.model,
    [prompt], ...)`` and ``len(prompt.split())`` (a list fails), and
    ``['<|endoftext|>'] + data.get("end_strings", [])`` (a string there fails):
    NVIDIA/NeMo@v2.5.0rc0:nemo/collections/nlp/modules/common/text_generation_server.py#L96-L141.
    """
    if not isinstance(body.get("prompt"), str):
        return flask_500(500, "")
    if not isinstance(body.get("end_strings", []), list):
        return flask_500(500, "")
    return None


# -- /v1/models -----------------------------------------------------------------------------


def _vllm_models(owned_by: str) -> ModelsShape:
    """vLLM's ``ModelList`` of ``ModelCard`` with ``root``, ``parent``, ``max_model_len``.

    ``ModelCard`` (``owned_by: str = "vllm"``) and ``ModelPermission``: vllm-project/vllm,
    index copy of ``vllm/entrypoints/serve/engine/protocol.py``. NIM 1.x answers the same
    shape with ``owned_by: "system"`` (documented only for NIM for VLMs:
    https://docs.nvidia.com/nim/vision-language-models/1.3.0/api-reference.html).
    """

    def models(names: list[str], context_window: int, created: int) -> Any:
        permission = {
            "id": f"modelperm-{uuid.uuid4().hex}",
            "object": "model_permission",
            "created": created,
            "allow_create_engine": False,
            "allow_sampling": True,
            "allow_logprobs": True,
            "allow_search_indices": False,
            "allow_view": True,
            "allow_fine_tuning": False,
            "organization": "*",
            "group": None,
            "is_blocking": False,
        }
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": owned_by,
                "root": name,
                "parent": None,
                "max_model_len": context_window,
                "permission": [permission],
            }
            for name in names
        ]
        return {"object": "list", "data": data}

    return models


def _steerlm_models(names: list[str], context_window: int, created: int) -> Any:
    """The dev server's own list (``owned_by: "steerlm"``, vLLM's ``max_model_len``)."""
    data = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "steerlm",
            "max_model_len": context_window,
        }
        for name in names
    ]
    return {"object": "list", "data": data}


def _trtllm_models(names: list[str], context_window: int, created: int) -> Any:
    """``ModelList`` of ``ModelCard{id, object, created, owned_by: "tensorrt_llm"}``.

    NVIDIA/TensorRT-LLM ``tensorrt_llm/serve/openai_protocol.py`` (index copy 0076e939):
    no context length in it.
    """
    data = [
        {"id": n, "object": "model", "created": created, "owned_by": "tensorrt_llm"} for n in names
    ]
    return {"object": "list", "data": data}


def _llamacpp_models(names: list[str], context_window: int, created: int) -> Any:
    """``owned_by: "llamacpp"`` with ``meta`` (``n_ctx_train``, ``n_ctx`` in newer builds).

    The ``/v1/models`` handler of ggml-org/llama.cpp ``tools/server/server-context.cpp``
    (index copy); ``meta`` values other than the context are the scripted engine's stand-ins.
    """
    meta = {
        "vocab_type": 2,
        "n_vocab": 49152,
        "n_ctx": context_window,
        "n_ctx_train": context_window,
    }
    data = [
        {"id": n, "object": "model", "created": created, "owned_by": "llamacpp", "meta": meta}
        for n in names
    ]
    return {"object": "list", "data": data}


def _ray_models(names: list[str], context_window: int, created: int) -> Any:
    """``{"data": [{"id", "object": "model", "created"}], "object": "list"}``: no ``owned_by``.

    NVIDIA-NeMo/Export-Deploy@914daa6:nemo_deploy/llm/megatronllm_deployable_ray.py#L541-L547
    (one model, the deployment's ``model_id``).
    """
    return {"data": [{"id": names[0], "object": "model", "created": created}], "object": "list"}


# -- not found ------------------------------------------------------------------------------

#: FastAPI's 404 for a path no route matches (checked on FastAPI 0.165).
FASTAPI_NOT_FOUND = Reply(404, {"detail": "Not Found"})
#: Flask's (werkzeug's) HTML 404 page: NeMo's Flask app registers no error handler for
#: unknown URLs (NVIDIA/NeMo@v2.5.0rc0:...text_generation_server.py#L419-L443).
FLASK_NOT_FOUND = Reply(
    404,
    text="<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    "<p>The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again.</p>\n",
    content_type="text/html; charset=utf-8",
)

_NOT_A_DICT = "Input should be a valid dictionary or object to extract fields from"
# FastAPI's answers to a body that is not JSON, or not an object where the model wants one
# (a ``json_invalid`` or ``model_attributes_type`` error; checked on FastAPI 0.165).
_FASTAPI_BAD_BODY = BadBody(
    not_json=(
        422,
        {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]},
    ),
    not_an_object=(
        422,
        {
            "detail": [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": _NOT_A_DICT,
                }
            ]
        },
    ),
)
_TRTLLM_BAD_BODY = BadBody(
    not_json=(
        400,
        {
            "error": _validation_message(
                [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error"}]
            )
        },
    ),
    not_an_object=(
        400,
        {
            "error": _validation_message(
                [{"type": "model_attributes_type", "loc": ("body",), "msg": _NOT_A_DICT}]
            )
        },
    ),
)
_FLASK_BAD_BODY = BadBody(
    not_json=(
        400,
        {"message": "The browser (or proxy) sent a request that this server could not understand."},
    ),
    not_an_object=(500, {"message": "Internal Server Error"}),
)


# -- the profiles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What one engine's ``/v1`` does, as the routes apply it.

    Attributes:
        name: The ``--openai-profile`` value.
        summary: One line for ``--help`` and the docs.
        completions_path: The path of the completions route.
        models: ``GET /v1/models``'s answer, or None: the engine has no such route.
        redirect_slashes: A path that matches a route but for its trailing slash is a 307
            to the route (Starlette's ``Router(redirect_slashes=True)``, every FastAPI app's
            default); False: a 404.
        not_found: The answer to a ``/v1`` path the engine does not route; None: the dev
            server's own 404 (the route table's).
        check: Refuses a body the engine refuses (before generation).
        error: The engine's error answer (a bad request, an unknown model, a failure).
        bad_body: The answers to a body that is not JSON or not an object.
        stop_key: The request key the engine reads stop strings from; None: none at all.
        streams: Whether ``stream: true`` streams; False: the answer is plain JSON.
        checks_model: Whether an unknown ``model`` is a 404.
        keeps_stop: Whether the answer's text keeps the stop string it stopped at.
        usage: What ``usage`` counts: ``"tokens"``, whitespace-separated ``"words"``, or None
            for no ``usage`` at all.
        finish_reason: ``"engine"`` (the true one), ``"empty"`` (always ``""``), ``"chars"``
            (``"length"`` when the text has at least ``max_tokens`` characters, else
            ``"stop"``), or ``"absent"`` (no such key).
        defaults: Sampling defaults of the engine's route where the key is absent.
        answer_model: The ``model`` of the answer, from (request body, served model).
        choice_extras: Keys the engine's choices carry beyond the dev server's own.
        usage_extras: Keys its ``usage`` carries beyond the three counts.
    """

    name: str
    summary: str
    completions_path: str = "/v1/completions"
    models: ModelsShape | None = _steerlm_models
    redirect_slashes: bool = True
    not_found: Reply | None = FASTAPI_NOT_FOUND
    check: Check | None = None
    error: ErrorShape = openai_error
    bad_body: BadBody | None = None
    stop_key: str | None = "stop"
    streams: bool = True
    checks_model: bool = False
    keeps_stop: bool = False
    usage: Literal["tokens", "words"] | None = "tokens"
    finish_reason: Literal["engine", "empty", "chars", "absent"] = "engine"
    defaults: Mapping[str, Any] = field(
        default_factory=lambda: {"max_tokens": 16, "temperature": 1.0, "top_p": 1.0}
    )
    answer_model: Callable[[dict[str, Any], str], str] | None = None
    choice_extras: Mapping[str, Any] = field(default_factory=dict)
    usage_extras: Mapping[str, Any] = field(default_factory=dict)

    def paths(self) -> dict[str, str]:
        """The engine's ``/v1`` paths, each mapped to the dev server's route path."""
        table = {self.completions_path: "/v1/completions"}
        if self.models is not None:
            table["/v1/models"] = "/v1/models"
        return table


_VLLM_CHOICE_EXTRAS = {"token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None}

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            DEFAULT_PROFILE,
            "the dev server's own /v1 (vLLM-like, no stop limit, no slash redirects)",
            redirect_slashes=False,
            not_found=None,
            checks_model=True,
        ),
        # vLLM: routes without a trailing slash on a default FastAPI app (build_app in
        # vllm/entrypoints/openai/api_server.py, index copy 0001948b: FastAPI(lifespan=...),
        # so redirect_slashes; the 307 for /v1/completions/ seen on the real 0.32.0 in
        # issue 17). Unknown model: 404 NotFoundError; choices carry stop_reason and the
        # token_ids/prompt_* fields (CompletionResponseChoice, index copy 002032ee of
        # vllm/entrypoints/openai/completion/protocol.py); usage has prompt_tokens_details.
        Profile(
            "vllm",
            "vLLM 0.32: at most 4 stop strings (400), /v1/completions/ is a 307, "
            "owned_by vllm with max_model_len",
            models=_vllm_models("vllm"),
            check=_vllm_check,
            checks_model=True,
            choice_extras=_VLLM_CHOICE_EXTRAS,
            usage_extras={"prompt_tokens_details": None},
        ),
        # TensorRT-LLM trtllm-serve: CompletionResponseChoice / UsageInfo fields and
        # ModelCard (index copy 0076e939 of tensorrt_llm/serve/openai_protocol.py); routes
        # without a slash on FastAPI(lifespan=...) (index copy 00057725 of openai_server.py).
        # Whether it checks the model name is not verified: it does not here.
        Profile(
            "trtllm",
            "TensorRT-LLM trtllm-serve: unknown request keys are a 400 (extra=forbid), "
            "owned_by tensorrt_llm, flat error objects",
            models=_trtllm_models,
            check=_trtllm_check,
            error=trtllm_error,
            bad_body=_TRTLLM_BAD_BODY,
            choice_extras={
                "token_ids": None,
                "context_logits": None,
                "disaggregated_params": None,
                "avg_decoded_tokens_per_iter": None,
            },
            usage_extras={"prompt_tokens_details": None},
        ),
        Profile(
            "nim",
            "NIM for LLMs 1.x (vLLM-based): accepts nvext, owned_by system, vLLM's limits",
            models=_vllm_models("system"),
            check=_nim_check,
            checks_model=True,
            choice_extras=_VLLM_CHOICE_EXTRAS,
            usage_extras={"prompt_tokens_details": None},
        ),
        # llama.cpp llama-server: cpp-httplib routes without a slash and no redirect (a 404,
        # inferred from the router, not run); model names are not checked.
        Profile(
            "llamacpp",
            "llama.cpp llama-server: accepts json_schema or grammar, owned_by llamacpp",
            models=_llamacpp_models,
            redirect_slashes=False,
            not_found=None,
            check=_llamacpp_check,
            error=llamacpp_error,
        ),
        # Export-Deploy's PyTriton FastAPI proxy at 914daa6:
        # nemo_deploy/service/fastapi_interface_to_pytriton.py. Only POST /v1/completions/
        # (#L225), no /v1/models; BaseRequest defaults max_tokens 512, temperature 1.0,
        # top_p 0.0 (#L67-L71); no stop, no stream in the model (#L82-L93), so both are
        # ignored; the answer is query_llm's dict (nemo_deploy/llm/query_llm.py#L166-L172:
        # id, object, created, model = the request's model, choices=[{"text"}]) with
        # choices[0].logprobs None unless asked (#L249-L261): no index, no finish_reason,
        # no usage.
        Profile(
            "nemo-deploy",
            "NeMo 2.x Export-Deploy PyTriton proxy: POST /v1/completions/ only, model "
            "required, one prompt string, no stop/stream/usage/finish_reason, no /v1/models",
            completions_path="/v1/completions/",
            models=None,
            check=_nemo_deploy_check,
            error=fastapi_500,
            bad_body=_FASTAPI_BAD_BODY,
            stop_key=None,
            streams=False,
            usage=None,
            finish_reason="absent",
            defaults={"max_tokens": 512, "temperature": 1.0, "top_p": 0.0},
            answer_model=lambda body, served: str(body["model"]),
        ),
        # Export-Deploy's Ray Serve deployment at 914daa6:
        # nemo_deploy/llm/megatronllm_deployable_ray.py. Only POST /v1/completions/
        # (#L356); stop honoured (#L369-L372; whether mcore leaves the stop word in the
        # text is not verified: kept here); max_tokens 256 (#L377); usage counts words
        # (#L395-L398); model = the deployment's model_id (#L416); logprobs always an
        # object (#L421-L426); finish_reason compares characters with max_tokens
        # (#L427-L431). Not streaming.
        Profile(
            "nemo-deploy-ray",
            "NeMo 2.x Export-Deploy Ray Serve: POST /v1/completions/ only, stop honoured, "
            "word-count usage, logprobs an object of nulls, no streaming",
            completions_path="/v1/completions/",
            models=_ray_models,
            check=_ray_check,
            error=ray_error,
            bad_body=_FASTAPI_BAD_BODY,
            streams=False,
            keeps_stop=True,
            usage="words",
            finish_reason="chars",
            # Absent temperature and top_p mean greedy (top_k 1, #L363-L367).
            defaults={"max_tokens": 256, "temperature": 0.0, "top_p": 0.0},
        ),
        # NeMo 2.x's Flask server, NVIDIA/NeMo@v2.5.0rc0:
        # nemo/collections/nlp/modules/common/text_generation_server.py. /v1/completions
        # beside PUT /generate (#L419-L443, no slash form, no /v1/models); end_strings,
        # not stop (#L96-L114); defaults max_tokens 32, temperature 0.0 (greedy), top_p
        # 1.0; text = the decoded sentence minus the prompt's length (#L137), so it keeps
        # the end string NeMo stopped at; usage counts words (#L140-L141); finish_reason
        # "" and model "nemo model" (#L143-L164). Not streaming.
        Profile(
            "nemo-flask",
            "NeMo 2.x Flask text_generation_server: end_strings not stop, one prompt "
            'string, finish_reason "", model "nemo model", word-count usage',
            models=None,
            redirect_slashes=False,
            not_found=FLASK_NOT_FOUND,
            check=_flask_check,
            error=flask_500,
            bad_body=_FLASK_BAD_BODY,
            stop_key="end_strings",
            streams=False,
            keeps_stop=True,
            usage="words",
            finish_reason="empty",
            defaults={"max_tokens": 32, "temperature": 0.0, "top_p": 1.0},
            answer_model=lambda body, served: "nemo model",
        ),
    )
}

#: The ``--openai-profile`` values.
PROFILE_NAMES = tuple(PROFILES)


def current(server: Any) -> Profile:
    """The profile ``server`` imitates (its ``openai_profile``)."""
    return PROFILES[getattr(server, "openai_profile", DEFAULT_PROFILE)]


def route_path(server: Any, exchange: Exchange) -> str | None:
    """The route-table path answering ``exchange`` under the server's profile.

    None when the profile answered here: a 307 to the other trailing-slash form (Starlette's
    ``redirect_slashes``: it redirects whenever the other form matches a route, under any
    method), or its 404 for a ``/v1`` path the engine does not route. Paths outside ``/v1``
    (``PUT /generate``, ``GET /health``) are the dev server's under every profile.
    """
    profile = current(server)
    path, _, query = exchange.path.partition("?")
    if profile.name == DEFAULT_PROFILE or not path.startswith("/v1/"):
        return exchange.path
    paths = profile.paths()
    if path in paths:
        return paths[path]
    other = path[:-1] if path.endswith("/") else path + "/"
    if profile.redirect_slashes and other in paths:
        host = exchange.headers.get("Host") or "{}:{}".format(*server.server_address[:2])
        exchange.send_redirect(307, f"http://{host}{other}" + (f"?{query}" if query else ""))
        return None
    # Only the completions and models routes are the profile's; other /v1 routes of the dev
    # server (e.g. the attribute model's) stay as the route table has them.
    own = {"/v1/completions", "/v1/completions/", "/v1/models", "/v1/models/"}
    if profile.not_found is None or path not in own:
        return exchange.path
    profile.not_found.send(exchange)
    return None


def usage_of(
    profile: Profile, token_counts: tuple[int, int], prompts: list[str], texts: list[str]
) -> dict[str, Any] | None:
    """The answer's ``usage``: token counts, words, or None (no ``usage`` key)."""
    if profile.usage is None:
        return None
    if profile.usage == "words":
        prompt = sum(len(p.split()) for p in prompts)
        completion = sum(len(t.split()) for t in texts)
    else:
        prompt, completion = token_counts
    counts = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return {**counts, **profile.usage_extras}


def answer_head(profile: Profile, body: dict[str, Any], served: str) -> dict[str, Any]:
    """``id``, ``object``, ``created``, ``model`` as the engine writes them."""
    if profile.name == "nemo-flask":  # "cmpl-<uuid4>" (#L158)
        answer_id = f"cmpl-{uuid.uuid4()}"
    elif profile.name in ("nemo-deploy", "nemo-deploy-ray"):  # "cmpl-<unix time>"
        answer_id = f"cmpl-{int(time.time())}"
    else:
        answer_id = f"cmpl-{int(time.time() * 1000)}"
    model = profile.answer_model(body, served) if profile.answer_model else served
    return {
        "id": answer_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }

"""NeMo's ``PUT /generate`` request rules, as ``text_generation_server.py`` applies them.

Validation failures are raised as :class:`RejectionError`, carrying what NeMo answers:
HTTP 200 and a JSON string body (400 for too many sentences), and so does this server.

The NeMo facts the server needs are defined here once (:data:`END_OF_TEXT`,
:data:`MAX_SENTENCES`), apart from the client's copies in ``steerlm.options``: the dev
server is the reference the client is tested against, so it does not share the
client's values (a wrong constant there then fails the tests instead of agreeing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: NeMo's default end string; end-of-sequence stops generation while it is listed.
END_OF_TEXT = "<|endoftext|>"
#: Most sentences one ``PUT /generate`` takes (HTTP 400 above).
MAX_SENTENCES = 128

#: NeMo releases the server can mimic, each standing for a range of releases whose
#: ``text_generation_server.py`` and stop rules behave alike (see :func:`release`).
NEMO_VERSIONS = ("1.17", "1.18", "1.20", "1.23", "2.5", "latest")

#: Keys NeMo knows; others are logged and ignored. Older releases lack the last three.
KNOWN_KEYS = frozenset(
    {
        "sentences",
        "tokens_to_generate",
        "temperature",
        "add_BOS",
        "top_k",
        "top_p",
        "greedy",
        "all_probs",
        "repetition_penalty",
        "min_tokens_to_generate",
        "end_strings",
        "compute_logprob",
        "random_seed",
    }
)
_KEYS_FROM_1_18 = frozenset({"end_strings"})
_KEYS_FROM_1_21 = frozenset({"compute_logprob", "random_seed"})  # 1.22, 1.23 in fact

log = logging.getLogger("steerlm.server")


@dataclass(frozen=True)
class GenerateParams:
    """A validated request, with NeMo's defaults filled in."""

    tokens_to_generate: int = 64
    temperature: float = 1.0
    greedy: bool = False
    top_k: int = 0
    top_p: float = 0.9
    repetition_penalty: float = 1.0  # the value sampling uses, after release quirks
    add_BOS: bool = False
    all_probs: bool = False
    min_tokens_to_generate: int = 0
    end_strings: tuple[str, ...] = (END_OF_TEXT,)
    compute_logprob: bool = False
    random_seed: int | None = None
    nemo_version: str = "latest"

    @property
    def stops_at_end_of_sequence(self) -> bool:
        """NeMo 1.18+: end-of-sequence stops only while ``<|endoftext|>`` is an end string."""
        return END_OF_TEXT in self.end_strings

    @property
    def wants_logprobs(self) -> bool:
        """Whether the answer carries log-probabilities."""
        return self.compute_logprob or self.all_probs


@dataclass(frozen=True)
class Rejection:
    """A request NeMo refuses: the HTTP status and the JSON string it answers with."""

    status: int
    message: str


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def release(nemo_version: str) -> tuple[int, int]:
    """The release a ``nemo_version`` name stands for, as (major, minor).

    ``"1.18"`` stands for 1.18-1.19 (whole end strings), ``"1.20"`` for 1.20 alone (first-token
    stop), ``"1.23"`` for 1.21-2.0, ``"2.5"`` and ``"latest"`` for 2.1 and later.
    """
    if nemo_version == "latest":
        return (2, 5)
    if nemo_version not in NEMO_VERSIONS:
        raise ValueError(f"nemo_version must be one of {NEMO_VERSIONS}, got {nemo_version!r}")
    major, minor = nemo_version.split(".")
    return (int(major), int(minor))


def known_keys(nemo_version: str) -> frozenset[str]:
    """The request keys a release knows; it logs and ignores the others."""
    version = release(nemo_version)
    known = KNOWN_KEYS
    if version < (1, 21):
        known -= _KEYS_FROM_1_21
    if version < (1, 18):
        known -= _KEYS_FROM_1_18
    return known


def _release_defaults(nemo_version: str) -> dict[str, Any]:
    # text_generation_server.py: repetition_penalty defaults to 1.2 up to 2.0.0, 1.0 from 2.1.0.
    return {"repetition_penalty": 1.2 if release(nemo_version) < (2, 1) else 1.0}


def _dropped_by_generate(nemo_version: str, sent: Mapping[str, Any]) -> dict[str, Any]:
    """Values NeMo validates but never passes on to sampling, by release.

    From 1.20 ``generate()`` grew ``compute_attention_mask, compute_logprob`` before
    ``repetition_penalty``, but the server still passes ``repetition_penalty`` positionally
    (through 2.5), so it lands in ``compute_attention_mask`` and sampling uses the 1.0
    default; 1.20 passes ``min_tokens_to_generate`` positionally too (into
    ``compute_logprob``), so it is dropped as well, and a non-zero value switches
    log-probabilities on. Before 1.20 log-probabilities are always computed and returned.
    """
    version = release(nemo_version)
    dropped: dict[str, Any] = {}
    if version < (1, 20):
        dropped["compute_logprob"] = True
    if version >= (1, 20):
        dropped["repetition_penalty"] = 1.0
    if version == (1, 20):
        dropped["min_tokens_to_generate"] = 0
        dropped["compute_logprob"] = bool(sent.get("min_tokens_to_generate"))
    return dropped


def unapplied_keys(nemo_version: str, sent: Mapping[str, Any]) -> list[str]:
    """Keys of ``sent`` that the release validates but whose value sampling never uses.

    Only values that would change something count: a ``repetition_penalty`` of 1.0 sent to
    NeMo 1.20+ is dropped for the 1.0 it already was. Keys the release does not know are
    not listed (they are logged as not allowed).
    """
    known = known_keys(nemo_version)
    dropped = _dropped_by_generate(nemo_version, sent)
    return [
        key for key, used in dropped.items() if key in sent and key in known and sent[key] != used
    ]


def newest_release_applying(key: str) -> str:
    """The newest ``nemo_version`` whose ``generate()`` applies a sent ``key``.

    Raises:
        ValueError: No release applies it.
    """
    for name in reversed(NEMO_VERSIONS):
        if key in known_keys(name) and key not in _dropped_by_generate(name, {}):
            return name
    raise ValueError(f"no NeMo release applies {key}")


def parse_request(body: dict[str, Any], nemo_version: str) -> tuple[list[str], GenerateParams]:
    """Validate a request body the way NeMo does.

    Returns:
        The sentences and the parameters.

    Raises:
        KeyError: ``sentences`` is missing (NeMo answers HTTP 500).
        RejectionError: A value fails NeMo's checks.
    """
    known = known_keys(nemo_version)
    for key in body:
        if key not in known:
            log.error("The request key %s is not allowed", key)
    sentences = body["sentences"]
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise RejectionError(Rejection(200, "sentences must be a list of strings"))
    if len(sentences) > MAX_SENTENCES:
        raise RejectionError(Rejection(400, f"Maximum number of sentences is {MAX_SENTENCES}"))
    values: dict[str, Any] = {"nemo_version": nemo_version, **_release_defaults(nemo_version)}
    for key, check, message in _CHECKS:
        if key in body and key in known:
            if not check(body[key]):
                raise RejectionError(Rejection(200, message))
            values[key] = body[key]
    if "end_strings" in values:
        values["end_strings"] = tuple(values["end_strings"])
    values.update(_dropped_by_generate(nemo_version, values))
    return sentences, GenerateParams(**values)


class RejectionError(Exception):
    """Carries the :class:`Rejection` NeMo would answer with."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


# (key, accepts value, NeMo's message). isinstance(True, int) holds in NeMo too.
_CHECKS = (
    (
        "tokens_to_generate",
        lambda v: isinstance(v, int) and v >= 1,
        "tokens_to_generate must be an integer greater than 0",
    ),
    ("all_probs", lambda v: isinstance(v, bool), "all_probs must be a boolean value"),
    (
        "temperature",
        lambda v: _is_number(v) and 0.0 < v <= 100.0,
        "temperature must be a positive number less than or equal to 100.0",
    ),
    ("add_BOS", lambda v: isinstance(v, bool), "add_BOS must be a boolean value"),
    ("greedy", lambda v: isinstance(v, bool), "greedy must be a boolean value"),
    ("top_k", lambda v: _is_number(v) and v >= 0, "top_k must be a positive integer number"),
    (
        "top_p",
        lambda v: _is_number(v) and 0.0 <= v <= 1.0,
        "top_p must be a positive number less than or equal to 1.0",
    ),
    (
        "repetition_penalty",
        lambda v: _is_number(v) and v >= 1.0,
        "repetition_penalty must be a positive number no less than 1.0",
    ),
    (
        "end_strings",
        lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "expect end_strings to be a list of strings",
    ),
    (
        "min_tokens_to_generate",
        lambda v: isinstance(v, int) and v >= 0,
        "min_tokens_to_generate must be an integer no less than 0",
    ),
    ("compute_logprob", lambda v: isinstance(v, bool), "compute_logprob must be a boolean value"),
    (
        "random_seed",
        lambda v: v is None or (isinstance(v, int) and v >= 0),
        "random_seed must be a positive integer number or None",
    ),
)

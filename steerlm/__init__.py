"""Framework-free core of the SteerLM integrations: presets, attributes, prompts, transports,
and the attribute model's client (:mod:`steerlm.scoring`)."""

from steerlm._version import __version__
from steerlm.attributes import encode_attributes, merge_attributes, parse_attributes
from steerlm.errors import (
    InvalidAttributesError,
    SteerLMConnectionError,
    SteerLMError,
    SteerLMInputError,
    SteerLMRedirectError,
    SteerLMResponseError,
    SteerLMResponseTooLargeError,
    SteerLMScoresError,
    SteerLMServerError,
    SteerLMStreamEndedError,
    SteerLMTimeoutError,
)
from steerlm.options import GenerationOptions, build_request_body
from steerlm.pipeline import CallPipeline, CallPlan
from steerlm.presets import (
    DEFAULT_PRESET,
    DEFAULT_SYSTEM_PROMPT,
    PRESETS,
    AttributeSpec,
    Preset,
    get_preset,
)
from steerlm.prompt import build_prompt, neutralize_markers
from steerlm.scoring import (
    HELPSTEER2_ATTRIBUTES,
    SCORER_SYSTEM_PROMPT,
    STEERLM_ATTRIBUTES,
    AttributeScores,
    SteerLMScorer,
)
from steerlm.settings import SteerLMSettings
from steerlm.transports import Transport, register_transport
from steerlm.transports.nemo import DEFAULT_BASE_URL, SteerLMClient
from steerlm.types import Completion, Turn, Usage

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PRESET",
    "DEFAULT_SYSTEM_PROMPT",
    "HELPSTEER2_ATTRIBUTES",
    "PRESETS",
    "SCORER_SYSTEM_PROMPT",
    "STEERLM_ATTRIBUTES",
    "AttributeScores",
    "AttributeSpec",
    "CallPipeline",
    "CallPlan",
    "Completion",
    "GenerationOptions",
    "InvalidAttributesError",
    "Preset",
    "SteerLMClient",
    "SteerLMConnectionError",
    "SteerLMError",
    "SteerLMInputError",
    "SteerLMRedirectError",
    "SteerLMResponseError",
    "SteerLMResponseTooLargeError",
    "SteerLMScorer",
    "SteerLMScoresError",
    "SteerLMServerError",
    "SteerLMSettings",
    "SteerLMStreamEndedError",
    "SteerLMTimeoutError",
    "Transport",
    "Turn",
    "Usage",
    "__version__",
    "build_prompt",
    "build_request_body",
    "encode_attributes",
    "get_preset",
    "merge_attributes",
    "neutralize_markers",
    "parse_attributes",
    "register_transport",
]

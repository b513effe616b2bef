"""LlamaIndex integration of NVIDIA SteerLM: ``SteerLMChat`` and ``SteerLMEvaluator``."""

from steerlm._extras import require_extra

require_extra("llamaindex_steerlm", "llamaindex", ("llama_index.core",))

from llamaindex_steerlm.base import SteerLMChat  # noqa: E402
from llamaindex_steerlm.evaluator import SteerLMEvaluator  # noqa: E402
from steerlm._version import __version__  # noqa: E402

__all__ = ["SteerLMChat", "SteerLMEvaluator", "__version__"]

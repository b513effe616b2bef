"""LlamaIndex integration of NVIDIA SteerLM: ``SteerLMChat``."""

from steerlm._extras import require_extra

require_extra("llamaindex_steerlm", "llamaindex", ("llama_index.core",))

from llamaindex_steerlm.base import SteerLMChat  # noqa: E402
from steerlm._version import __version__  # noqa: E402

__all__ = ["SteerLMChat", "__version__"]

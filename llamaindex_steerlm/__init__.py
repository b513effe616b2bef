"""LlamaIndex integration of NVIDIA SteerLM: ``SteerLMChat``."""

from llamaindex_steerlm.base import SteerLMChat

__all__ = ["SteerLMChat"]

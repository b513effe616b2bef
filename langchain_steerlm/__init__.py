"""LangChain integration of NVIDIA SteerLM: ``SteerLMChat``."""

from langchain_steerlm.chat_models import SteerLMChat

__all__ = ["SteerLMChat"]

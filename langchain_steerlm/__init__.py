"""LangChain integration of NVIDIA SteerLM: ``SteerLMChat`` and ``SteerLMRewardModel``."""

from steerlm._extras import require_extra

require_extra("langchain_steerlm", "langchain", ("langchain_core",))

from langchain_steerlm.chat_models import SteerLMChat  # noqa: E402
from langchain_steerlm.reward import SteerLMRewardModel  # noqa: E402
from steerlm._version import __version__  # noqa: E402

__all__ = ["SteerLMChat", "SteerLMRewardModel", "__version__"]

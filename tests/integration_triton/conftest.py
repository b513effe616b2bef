"""A real Triton server (PyTriton 0.7.0) bound as NeMo-Aligner binds its attribute model.

The server runs :mod:`tests.integration_triton.reward_server` in a child process, once per
session. Tests here are marked ``integration``; without ``nvidia-pytriton`` (installed
into ``.venv`` by ``make install``, kept out of ``.venv-floors``) they are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import select
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from steerlm.server.process import free_port

#: Seconds Triton may take to start and load the model (about 3 s here).
START_TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parents[2]


def triton_environment() -> dict[str, str]:
    """The environment for Triton: this interpreter's libpython first on the search path.

    Triton's python-backend stub links ``libpython3.11.so.1.0``; found on the system's
    library path it may be another 3.11 patch release than this venv's, whose standard
    library then fails in the stub (``'_thread.RLock' object has no attribute
    '_recursion_count'``).
    """
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        part for part in (libdir, env.get("LD_LIBRARY_PATH", "")) if part
    )
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(ROOT), env.get("PYTHONPATH", "")) if part
    )
    return env


@pytest.fixture(scope="session")
def triton_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of the real Triton server (model ``reward_model``)."""
    if importlib.util.find_spec("pytriton") is None:
        pytest.skip(
            "nvidia-pytriton is not installed: `.venv/bin/pip install nvidia-pytriton==0.7.0` "
            "(make install does) to run the tests against a real Triton server"
        )
    port = free_port()
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration_triton.reward_server", str(port)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=triton_environment(),
            cwd=ROOT,
        )
        assert process.stdout is not None
        try:
            deadline = time.monotonic() + START_TIMEOUT
            line = ""
            while line.strip() != "ready":
                left = deadline - time.monotonic()
                if left <= 0 or process.poll() is not None:
                    log.seek(0)
                    tail = log.read()[-3000:]
                    pytest.fail(f"Triton did not start (exit code {process.poll()}):\n{tail}")
                if select.select([process.stdout], [], [], min(left, 1.0))[0]:
                    line = process.stdout.readline()
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()  # the child leaves its Triton context: tritonserver stops
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            process.stdout.close()

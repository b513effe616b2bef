"""Whoever starts the dev server learns why it died: exit code or signal, output, and a fix."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from langchain_steerlm import SteerLMChat
from steerlm import SteerLMConnectionError
from steerlm.server.process import (
    SIGILL_HINT,
    DevServer,
    DevServerError,
    describe_exit,
    dev_server,
    free_port,
)

SCRIPTED = ("--engine", "scripted", "--log-level", "WARNING")


def test_exit_codes_and_signals_are_named() -> None:
    assert describe_exit(2) == "exit code 2"
    assert describe_exit(-signal.SIGILL).startswith("signal SIGILL (")
    assert describe_exit(-signal.SIGKILL).startswith("signal SIGKILL (")


def test_a_server_that_cannot_start_reports_exit_code_and_output(
    tmp_path: Path,
) -> None:
    with pytest.raises(DevServerError) as caught:
        DevServer("--model", f"{tmp_path}/missing.gguf").start(ready_timeout=60)
    message = str(caught.value)
    assert "died: exit code 2" in message
    assert "Last lines of its output:" in message
    assert "does not exist" in message


def test_an_illegal_instruction_names_the_signal_the_cause_and_the_fix() -> None:
    server = DevServer(*SCRIPTED).start()
    try:
        assert server.failure() is None
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGILL)  # what a CPU without AVX-512 does to it
        server.process.wait(timeout=10)
        failure = server.failure()
    finally:
        server.stop()
    assert failure is not None
    assert "signal SIGILL" in failure
    assert SIGILL_HINT in failure
    assert "GGML_NATIVE=OFF" in failure


def test_a_death_inside_the_block_is_reported_instead_of_connection_refused() -> None:
    with pytest.raises(DevServerError) as caught, dev_server(*SCRIPTED) as server:
        llm = SteerLMChat(base_url=server.url, max_retries=0)
        assert llm.invoke("Hi").content
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGILL)
        server.process.wait(timeout=10)
        llm.invoke("Hi again")
    assert "signal SIGILL" in str(caught.value)
    assert isinstance(caught.value.__cause__, SteerLMConnectionError)


def test_a_port_in_use_is_refused_not_shared() -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with pytest.raises(DevServerError, match=f"Port {port} is already in use"):
            DevServer(*SCRIPTED, port=port)

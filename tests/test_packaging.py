"""Packaging conventions: public names, versions, and clear errors for a missing extra."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import pytest
import requests

from steerlm.server.process import free_port

PUBLIC_NAMES = {
    "langchain_steerlm": ["SteerLMChat", "SteerLMRewardModel", "__version__"],
    "llamaindex_steerlm": ["SteerLMChat", "SteerLMEvaluator", "__version__"],
    "steerlm.server": [
        "Engine",
        "Fault",
        "GenerateParams",
        "Generation",
        "NeMoServer",
        "ScriptedEngine",
        "serve_in_thread",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_public_names_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC_NAMES[package])
    for name in module.__all__:
        assert hasattr(module, name), name


def test_core_exports_resolve() -> None:
    import steerlm

    assert "SteerLMChat" not in steerlm.__all__  # the core knows no framework
    assert all(hasattr(steerlm, name) for name in steerlm.__all__)


@pytest.mark.parametrize("package", ["steerlm", "langchain_steerlm", "llamaindex_steerlm"])
def test_version_is_the_distribution_version(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__version__ == importlib.metadata.version("steerlm-integrations")


@pytest.mark.parametrize(
    ("package", "hidden", "extra"),
    [
        ("langchain_steerlm", "langchain_core", "langchain"),
        ("llamaindex_steerlm", "llama_index.core", "llamaindex"),
        ("steerlm.server.llama_engine", "llama_cpp", "server"),
    ],
)
def test_missing_extra_names_the_extra(package: str, hidden: str, extra: str) -> None:
    # A fresh interpreter where the framework is not importable, as without the extra.
    code = f"import sys; sys.modules[{hidden!r}] = None; import {package}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError:"), result.stderr
    assert f"pip install 'steerlm-integrations[{extra}]'" in last_line
    assert hidden in last_line


def test_core_imports_without_any_framework() -> None:
    code = (
        "import sys\n"
        "for name in ('langchain_core', 'llama_index', 'llama_index.core', 'llama_cpp'):\n"
        "    sys.modules[name] = None\n"
        "import steerlm\n"
        "print(steerlm.SteerLMSettings.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SteerLMSettings"


# The dev server without llama.cpp: the scripted engine is standard library only.
WITHOUT_LLAMA_CPP = "import sys; sys.modules['llama_cpp'] = None; "


def test_the_server_imports_without_llama_cpp() -> None:
    code = WITHOUT_LLAMA_CPP + (
        "import steerlm.server, steerlm.server.cli\n"
        "server = steerlm.server.NeMoServer(('127.0.0.1', 0), steerlm.server.ScriptedEngine())\n"
        "server.server_close()\n"
        "print(sorted(steerlm.server.__all__))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sorted(PUBLIC_NAMES["steerlm.server"]))


def test_the_console_script_without_llama_cpp_says_one_line() -> None:
    # What `steerlm-server` (steerlm.server.cli:main) does when the llama engine is asked for.
    code = WITHOUT_LLAMA_CPP + "from steerlm.server.cli import main; sys.exit(main([]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "pip install 'steerlm-integrations[server]'" in result.stderr
    assert "llama_cpp" in result.stderr


def test_the_scripted_engine_serves_without_llama_cpp() -> None:
    port = free_port()
    code = WITHOUT_LLAMA_CPP + (
        "from steerlm.server.cli import main; "
        f"sys.exit(main(['--engine', 'scripted', '--port', '{port}']))"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        assert "serving scripted answers" in process.stderr.readline()
        answer = requests.put(
            f"http://127.0.0.1:{port}/generate", json={"sentences": ["Hi. "]}, timeout=10
        )
        assert answer.json()["sentences"] == ["Hi. This is a scripted answer."]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stderr is not None:
            process.stderr.close()

"""The dev server's llama.cpp runs on any x86-64 CPU with AVX2: no native-only instructions."""

from __future__ import annotations

import platform
import re
import subprocess
import sys

import pytest

from steerlm.server.process import SIGILL_HINT

# Instruction sets that many x86-64 CPUs and VMs lack; a build that uses them dies with
# SIGILL there. llama.cpp reports them from its compile flags, not from the running CPU.
NATIVE_ONLY = ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "AVX_VNNI")


def enabled_features() -> dict[str, bool]:
    # In a child: importing llama_cpp leaves a file open until the interpreter exits.
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    info = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {name: value == "1" for name, value in re.findall(r"(\w+) = (\d)", info)}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 only")
def test_llama_cpp_is_built_without_native_only_instructions() -> None:
    features = enabled_features()
    native = [name for name in NATIVE_ONLY if features.get(name)]
    assert not native, (
        f"llama-cpp-python was built with {', '.join(native)}, so the dev server dies with "
        f"SIGILL on CPUs without them. {SIGILL_HINT}"
    )
    assert features.get("AVX2"), f"expected an AVX2 build, got {features}"

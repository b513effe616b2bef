"""Every example runs to the end against the dev server on the real small model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = sorted(
    path
    for path in (Path(__file__).parents[1] / "examples").glob("*.py")
    if path.name != "run_demo.py"  # it starts its own server: `make demo` runs it
)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(example: Path, real_server_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(example)],
        env={**os.environ, "STEERLM_BASE_URL": real_server_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()

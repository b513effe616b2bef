"""The README's and the docs' Python examples run as pasted, against a dev server.

A ```python block right after a line ``<!-- run -->`` is runnable: it is saved to a file
and run by this venv's Python in a fresh process, with ``STEERLM_BASE_URL`` (and
``STEERLM_SCORER_URL``, for the attribute model) pointing at a dev server that this
module starts (the examples give no ``base_url``, so they read it).
``<!-- run: FLAGS -->`` starts a server of its own with those extra ``steerlm-server``
flags, e.g. a scripted ``--answer`` that makes tool calls visible. Python blocks without
the comment are fragments and are not run. CONTRIBUTING.md states the same convention.

The unit tier runs every runnable block on the scripted engine; the integration tier runs
the blocks without flags on the real small model (flags hold a scripted answer, which the
real model would not give). The layout page is checked too: it names every module and test
file that exists, and none that does not.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from steerlm.server.process import dev_server

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_MARKER = re.compile(r"^<!-- run(?P<rest>.*?)-->[ \t]*$", re.MULTILINE)
_BLOCK = re.compile(r"```python\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One runnable block: where it is, the server flags it asks for, and its code."""

    path: Path
    line: int
    flags: tuple[str, ...]
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples_in(path: Path) -> list[Example]:
    """The runnable blocks of one Markdown file.

    Raises:
        ValueError: A ``<!-- run -->`` marker is not directly followed by a python block,
            or its flags are not ``: FLAGS``.
    """
    text = path.read_text(encoding="utf-8")
    starts = text.count("\n<!-- run") + text.startswith("<!-- run")
    if starts != len(_MARKER.findall(text)):
        raise ValueError(f"{path}: a '<!-- run' line does not end with '-->'")
    found = []
    for marker in _MARKER.finditer(text):
        line = text.count("\n", 0, marker.start()) + 1
        rest = marker.group("rest").strip()
        if rest and not rest.startswith(":"):
            raise ValueError(f"{path}:{line}: write '<!-- run -->' or '<!-- run: FLAGS -->'")
        block = _BLOCK.match(text, marker.end() + 1)
        if block is None:
            raise ValueError(f"{path}:{line}: '<!-- run -->' must be followed by a ```python block")
        flags = tuple(shlex.split(rest[1:])) if rest else ()
        found.append(Example(path, line + 1, flags, block.group("code")))
    return found


EXAMPLES = [example for path in DOCS for example in examples_in(path)]
PLAIN = [example for example in EXAMPLES if not example.flags]


def run_example(example: Example, base_url: str, folder: Path, timeout: float) -> str | None:
    """Run the block as a script, from a folder outside the repository.

    Returns:
        None when it ran to the end and printed something, else what went wrong.
    """
    script = folder / "example.py"
    script.write_text(example.code, encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=folder,
            # The dev server serves the attribute model on the same port.
            env={**os.environ, "STEERLM_BASE_URL": base_url, "STEERLM_SCORER_URL": base_url},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"{example.name} did not end within {timeout} s"
    if result.returncode != 0:
        return f"{example.name} failed (exit {result.returncode}):\n{result.stderr}"
    if not result.stdout.strip():
        return f"{example.name} printed nothing"
    return None


@pytest.fixture(scope="module")
def scripted_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str | None]]:
    """Every selected example run on the scripted engine, a few at a time.

    Most of an example's time is its interpreter importing the frameworks, so running them
    side by side shortens the unit tier; each test then reports its own example. Servers:
    one scripted dev server per set of flags.
    """
    selected = {
        example.name: example
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_example_runs_on_the_scripted_engine"
        for example in [item.callspec.params["example"]]  # a parametrized test's Function
    }
    with ExitStack() as stack:
        urls: dict[tuple[str, ...], str] = {}
        for example in selected.values():
            if example.flags not in urls:
                server = stack.enter_context(
                    dev_server("--engine", "scripted", "--log-level", "WARNING", *example.flags)
                )
                urls[example.flags] = server.url
        workers = min(4, os.cpu_count() or 2)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {
                name: pool.submit(
                    run_example, example, urls[example.flags], tmp_path_factory.mktemp("doc"), 120
                )
                for name, example in selected.items()
            }
            yield {name: future.result() for name, future in futures.items()}


def test_the_readme_has_a_runnable_example_per_framework() -> None:
    readme = [example.code for example in EXAMPLES if example.path.name == "README.md"]
    assert any("langchain_steerlm" in code for code in readme)
    assert any("llamaindex_steerlm" in code for code in readme)
    # As pasted against the dev server, each must return in seconds: the small model loops
    # until max_tokens, and the default of 1024 takes about 15 s.
    assert all("max_tokens=" in code for code in readme)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
def test_example_runs_on_the_scripted_engine(
    example: Example, scripted_runs: dict[str, str | None]
) -> None:
    problem = scripted_runs[example.name]
    assert problem is None, problem


@pytest.mark.integration
@pytest.mark.parametrize("example", PLAIN, ids=lambda example: example.name)
def test_example_runs_on_the_real_model(
    example: Example, real_server_url: str, tmp_path: Path
) -> None:
    problem = run_example(example, real_server_url, tmp_path, timeout=300)
    assert problem is None, problem


# -- the layout page -------------------------------------------------------------------------

LAYOUT = ROOT / "docs" / "dev" / "layout.md"
_PACKAGES = ("steerlm", "langchain_steerlm", "llamaindex_steerlm", "tests")
_NAMED = re.compile(r"`((?:steerlm|langchain_steerlm|llamaindex_steerlm|tests)/[\w/]*\.py)`")


def test_the_layout_page_names_every_module_and_test_file() -> None:
    existing = {
        str(path.relative_to(ROOT))
        for package in _PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if not (path.name == "__init__.py" and path.parts[len(ROOT.parts)] == "tests")
    }
    named = set(_NAMED.findall(LAYOUT.read_text(encoding="utf-8")))
    assert not existing - named, f"add to {LAYOUT.relative_to(ROOT)}: {sorted(existing - named)}"
    assert not named - existing, f"gone, remove from the layout: {sorted(named - existing)}"


# -- links outside the docs site -------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_the_links_of_the_pages_outside_the_site_exist(name: str) -> None:
    """``mkdocs build --strict`` checks the site's links; these two files are not in it."""
    text = (ROOT / name).read_text(encoding="utf-8")
    headings = {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    broken = []
    for target in _LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        missing = not (ROOT / path).exists() if path else anchor not in headings
        if missing:
            broken.append(target)
    assert not broken, f"{name} links to what does not exist: {broken}"

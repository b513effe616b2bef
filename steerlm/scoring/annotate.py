"""``steerlm-annotate``: label a NeMo-Aligner dataset with an attribute model's scores.

What NeMo-Aligner's ``examples/nlp/data/steerlm/attribute_annotate.py`` does (read at
``NVIDIA/NeMo-Aligner@v0.7.0``, lines cited in docs/dev/engine-facts.md, section 3a), on
its data format, one JSON object a line::

    {"system": "...", "mask": "User",
     "conversations": [{"from": "User", "value": "...", "label": null},
                       {"from": "Assistant", "value": "...", "label": "..."}]}

Every turn whose ``label`` is present and not null gets the label line of its scores
(``quality:4,toxicity:0,...``); the text scored is the conversation up to and including
that turn, where a turn is the user's when ``from`` equals ``mask`` and the assistant's
otherwise (``#L104-L115``). Like the original, the sample's own ``system`` is not sent
(the default system prompt is, ``#L104``) unless ``--system-from-sample`` is given; output
lines are ``json.dumps(sample)`` in input order (``#L143``), and a rerun skips the
samples whose key, their turn values joined, is already in the output (``#L79-L103``).

Without the original's faults: it does not read the ``exceeded`` output the server lost
in NeMo-Aligner 0.4.0; many samples go out in one request, several requests at a time;
a bad line is reported with its number and skipped; an interrupted run (Ctrl-C, a server
error) leaves only whole lines, and running the same command again completes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from steerlm.errors import SteerLMError
from steerlm.scoring.conversation import Conversation
from steerlm.scoring.scorer import SCORER_URL_ENV, SteerLMScorer
from steerlm.scoring.scores import AttributeScores

#: Exit statuses: done; the server failed (rerun to resume); bad usage; interrupted.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def sample_key(sample: dict[str, Any]) -> str:
    """The resume key of a sample, as ``attribute_annotate.py#L79-L81`` makes it: the
    values of its turns joined with nothing between them."""
    return "".join(str(turn["value"]) for turn in sample["conversations"])


class BadSample(ValueError):
    """A line that is not a sample of NeMo-Aligner's format (the message says why)."""


@dataclass
class Sample:
    """One input sample and the conversations of its labelled turns."""

    line: int
    data: dict[str, Any]
    labelled: list[int] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)


def parse_sample(text: str, line: int, system_from_sample: bool = False) -> Sample:
    """Read one input line into a :class:`Sample`.

    Raises:
        BadSample: Not JSON, or not ``{"mask", "conversations": [{"from", "value"}...]}``,
            or a label on a user turn (the attribute model scores answers).
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadSample(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadSample(f"a JSON {type(data).__name__}, not an object")
    turns, mask = data.get("conversations"), data.get("mask")
    if not isinstance(turns, list) or not turns:
        raise BadSample("no 'conversations' list of turns")
    if not isinstance(mask, str):
        raise BadSample("no 'mask' naming the user's 'from' (e.g. \"mask\": \"User\")")
    system = data.get("system")
    if system_from_sample and not isinstance(system, str):
        raise BadSample("no 'system' string (--system-from-sample)")
    sample = Sample(line, data)
    pairs: list[tuple[str, str]] = [("system", str(system))] if system_from_sample else []
    for index, turn in enumerate(turns):
        if not (
            isinstance(turn, dict)
            and isinstance(turn.get("from"), str)
            and isinstance(turn.get("value"), str)
        ):
            raise BadSample(f"turn {index} is not {{'from': str, 'value': str, 'label': ...}}")
        role = "user" if turn["from"] == mask else "assistant"
        pairs.append((role, turn["value"]))
        if turn.get("label") is not None:
            if role == "user":
                raise BadSample(
                    f"turn {index} is the user's (from == mask {mask!r}) and has a label; "
                    "the attribute model scores answers"
                )
            sample.labelled.append(index)
            sample.conversations.append(list(pairs))
    return sample


def read_done(output: Path) -> set[str]:
    """The keys of the samples already in ``output``; a last line cut off is dropped.

    A line without its newline is what a killed process may leave: it is removed from
    the file so that appending starts on a line of its own.
    """
    if not output.exists():
        return set()
    content = output.read_bytes()
    whole = content[: content.rfind(b"\n") + 1]
    if len(whole) != len(content):
        with output.open("r+b") as handle:
            handle.truncate(len(whole))
    done = set()
    for raw in whole.decode("utf-8").splitlines():
        try:
            done.add(sample_key(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue  # not a sample: nothing to skip by it
    return done


class Progress:
    """A one-line text progress bar on a stream (stderr), redrawn at most ten times a second."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True) -> None:
        self.total, self.stream, self.enabled = total, stream, enabled
        self.done = self.skipped = self.bad = 0
        self._drawn = 0.0
        self._width = 0

    def note(self, message: str) -> None:
        """Print ``message`` on a line of its own, above the bar."""
        self.clear()
        print(message, file=self.stream, flush=True)
        self.draw(force=True)

    def draw(self, force: bool = False) -> None:
        if not self.enabled or (not force and time.monotonic() - self._drawn < 0.1):
            return
        self._drawn = time.monotonic()
        seen = self.done + self.skipped + self.bad
        filled = 30 * seen // self.total if self.total else 30
        text = (
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {seen}/{self.total} samples "
            f"({self.done} annotated, {self.skipped} already done, {self.bad} bad)"
        )
        self._width = len(text)
        self.stream.write(text)
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def finish(self) -> None:
        self.draw(force=True)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _batches(
    lines: Iterator[tuple[int, str]],
    done: set[str],
    batch_size: int,
    progress: Progress,
    system_from_sample: bool,
) -> Iterator[list[Sample]]:
    batch: list[Sample] = []
    for number, text in lines:
        if not text.strip():
            continue
        try:
            sample = parse_sample(text, number, system_from_sample)
        except BadSample as exc:
            progress.bad += 1
            progress.note(f"line {number}: skipped: {exc}")
            continue
        if sample_key(sample.data) in done:
            progress.skipped += 1
            progress.draw()
            continue
        batch.append(sample)
        if sum(len(s.conversations) for s in batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score(scorer: SteerLMScorer, batch: list[Sample]) -> list[Sample]:
    conversations = [c for sample in batch for c in sample.conversations]
    scores: Iterator[AttributeScores] = iter(scorer.score(conversations) if conversations else [])
    for sample in batch:
        for index in sample.labelled:
            sample.data["conversations"][index]["label"] = next(scores).label_line
    return batch


def annotate(
    scorer: SteerLMScorer,
    input_path: Path,
    output_path: Path,
    *,
    concurrency: int = 4,
    batch_size: int = 32,
    system_from_sample: bool = False,
    stream: TextIO | None = None,
    progress_bar: bool = True,
) -> int:
    """Annotate ``input_path`` into ``output_path`` (appending; samples already there skipped).

    Args:
        scorer: The attribute model's client.
        input_path: NeMo-Aligner's JSONL.
        output_path: Where annotated samples go, in input order.
        concurrency: Scoring requests in flight at once.
        batch_size: Conversations (labelled turns) per scoring request, at least.
        system_from_sample: Send each sample's ``system`` instead of the default system
            prompt (``attribute_annotate.py`` always sends the default).
        stream: Where the progress bar and messages go (stderr).
        progress_bar: Draw the bar (messages are printed either way).

    Returns:
        An exit status: 0 done, 1 the server failed (a rerun resumes), 130 interrupted.
    """
    stream = stream if stream is not None else sys.stderr
    with input_path.open(encoding="utf-8") as handle:
        total = sum(1 for text in handle if text.strip())
    done = read_done(output_path)
    progress = Progress(total, stream, progress_bar)
    progress.draw(force=True)
    pending: deque[Future[list[Sample]]] = deque()
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="steerlm-annotate")
    status = EXIT_OK
    with (
        input_path.open(encoding="utf-8") as source,
        output_path.open("a", encoding="utf-8") as out,
    ):

        def write_head() -> None:
            for sample in pending.popleft().result():
                # One write per whole line: an interruption never leaves half of one.
                out.write(json.dumps(sample.data) + "\n")
                progress.done += 1
            out.flush()
            progress.draw()

        try:
            lines = enumerate(source, start=1)
            for batch in _batches(lines, done, batch_size, progress, system_from_sample):
                pending.append(pool.submit(_score, scorer, batch))
                while len(pending) >= concurrency or (pending and pending[0].done()):
                    write_head()
            while pending:
                write_head()
        except KeyboardInterrupt:
            status = EXIT_INTERRUPTED
            progress.note(
                f"interrupted: {progress.done} sample(s) written to {output_path}; run the "
                "same command again to complete it"
            )
        except SteerLMError as exc:
            status = EXIT_FAILED
            progress.note(
                f"error: {exc}\n{progress.done} sample(s) written to {output_path}; run the "
                "same command again to resume"
            )
        finally:
            pool.shutdown(wait=status == EXIT_OK, cancel_futures=True)
    progress.finish()
    return status


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``steerlm-annotate``."""
    parser = argparse.ArgumentParser(
        prog="steerlm-annotate",
        description="Label every labelled turn of a NeMo-Aligner JSONL dataset with a SteerLM "
        "attribute model's scores, as NeMo-Aligner's attribute_annotate.py does. Reruns "
        "resume: samples already in the output are skipped.",
    )
    parser.add_argument("--input", "--input-file", dest="input", required=True, type=Path)
    parser.add_argument("--output", "--output-file", dest="output", required=True, type=Path)
    parser.add_argument(
        "--url",
        default=None,
        help=f"the reward server's root (triton) or API root (nim); default ${SCORER_URL_ENV}, "
        "then http://localhost:5555 (triton) or http://localhost:8000/v1 (nim)",
    )
    parser.add_argument("--model", "--model_name", dest="model", default="reward_model")
    parser.add_argument("--api", choices=("triton", "nim"), default="triton")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="scoring requests in flight (default 4)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="labelled turns per request (default 32; api=nim sends them concurrently)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument(
        "--system-from-sample",
        action="store_true",
        help="send each sample's own 'system' (attribute_annotate.py sends the default)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``steerlm-annotate``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.batch_size < 1:
        parser.error("--concurrency and --batch-size must be at least 1")
    if not args.input.is_file():
        parser.error(f"--input {args.input} is not a file")
    if args.output.resolve() == args.input.resolve():
        parser.error("--output must not be the input file")
    try:
        scorer = SteerLMScorer(
            base_url=args.url,
            model=args.model,
            api=args.api,
            timeout=args.timeout,
            max_concurrency=max(1, args.batch_size),
        )
    except SteerLMError as exc:
        parser.error(str(exc))
    with scorer:
        return annotate(
            scorer,
            args.input,
            args.output,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            system_from_sample=args.system_from_sample,
            progress_bar=not args.no_progress,
        )


if __name__ == "__main__":  # python -m steerlm.scoring.annotate
    sys.exit(main())

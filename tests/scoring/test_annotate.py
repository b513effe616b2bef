"""steerlm-annotate on small files against the scripted attribute model: NeMo-Aligner's
format and labels, input order, bad lines, resumed and interrupted runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from steerlm.scoring import AttributeScores
from steerlm.scoring.annotate import main, sample_key
from steerlm.server.app import Fault, NeMoServer
from steerlm.server.scripted_scorer import STEERLM_ATTRIBUTES, scripted_scores
from tests.scoring.helpers import attribute_annotate_texts, sample, sent_texts


def multi_turn() -> dict[str, Any]:
    return {
        "system": "ignored, as attribute_annotate.py ignores it",
        "mask": "Human",
        "conversations": [
            {"from": "Human", "value": "Name a fruit.", "label": None},
            {"from": "Bot", "value": "An apple [[scores: humor=2.5]]", "label": "old"},
            {"from": "Human", "value": "Another?", "label": None},
            {"from": "Bot", "value": "A pear, ripe and sweet.", "label": ""},
        ],
    }


GOOD = [
    sample("What is 2 + 2?", "It is four."),
    multi_turn(),
    sample("Unlabelled?", "Kept as is.", label=None),
    sample("Hi", "Hello [[scores: quality=3.5, toxicity=-2, verbosity=9]]"),
]


def write_input(path: Path) -> None:
    lines = [
        json.dumps(GOOD[0]),
        "{not json",
        json.dumps(GOOD[1]),
        "",
        json.dumps({"conversations": [{"from": "User", "value": "x"}]}),  # no mask
        json.dumps(GOOD[2]),
        json.dumps(sample("Q", "A") | {"mask": "Assistant"}),  # a label on the user's turn
        json.dumps(GOOD[3]),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def label_line(text: str) -> str:
    """The label the scripted model gives the answer rendered in ``text``."""
    answer = text.rsplit("<extra_id_1>Assistant\n", 1)[1].removesuffix("\n<extra_id_2>")
    return AttributeScores(
        zip(STEERLM_ATTRIBUTES, scripted_scores(answer, STEERLM_ATTRIBUTES), strict=True)
    ).label_line


def expected_lines() -> list[str]:
    lines = []
    for item in GOOD:
        annotated = json.loads(json.dumps(item))
        texts = iter(attribute_annotate_texts(item))
        for turn in annotated["conversations"]:
            if turn.get("label") is not None:
                turn["label"] = label_line(next(texts))
        lines.append(json.dumps(annotated) + "\n")
    return lines


def run(nemo: NeMoServer, tmp_path: Path, *extra: str) -> tuple[int, str]:
    args = ["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]
    return main([*args, "--url", nemo.base_url, *extra]), ""


def test_annotates_like_attribute_annotate_in_input_order(
    nemo: NeMoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_input(tmp_path / "in.jsonl")
    status, _ = run(nemo, tmp_path, "--batch-size", "2", "--concurrency", "2")
    err = capsys.readouterr().err
    assert status == 0
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "".join(expected_lines())
    # The texts scored are attribute_annotate.py's, every labelled turn's prefix.
    expected_texts = [t for item in GOOD for t in attribute_annotate_texts(item)]
    assert sorted(sent_texts(nemo)) == sorted(expected_texts)
    assert len(nemo.reward_requests) == 2  # 4 labelled turns, 2 or more per request
    assert "line 2: skipped: not JSON" in err
    assert "line 5: skipped: no 'mask'" in err
    assert "line 7: skipped: turn 1 is the user's" in err
    assert "[##############################] 7/7 samples" in err
    assert "4 annotated, 0 already done, 3 bad" in err


def test_a_rerun_skips_what_is_done_and_completes_a_cut_line(
    nemo: NeMoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_input(tmp_path / "in.jsonl")
    first, *_ = expected_lines()
    # What a killed run may leave: whole lines, then part of one.
    (tmp_path / "out.jsonl").write_text(first + expected_lines()[1][:40], encoding="utf-8")
    status, _ = run(nemo, tmp_path, "--no-progress")
    assert status == 0
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "".join(expected_lines())
    assert attribute_annotate_texts(GOOD[0])[0] not in sent_texts(nemo)
    # A third run has nothing left to do.
    nemo.reward_requests.clear()
    assert run(nemo, tmp_path, "--no-progress")[0] == 0
    assert nemo.reward_requests == []
    assert "4 already done" not in capsys.readouterr().err  # no bar with --no-progress


def test_a_server_error_stops_with_whole_lines_and_a_rerun_resumes(
    nemo: NeMoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_input(tmp_path / "in.jsonl")
    nemo.faults.append(Fault(400, '{"error":"boom"}'))
    status, _ = run(nemo, tmp_path, "--batch-size", "1", "--concurrency", "1")
    assert status == 1
    assert "boom" in capsys.readouterr().err
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == ""
    assert run(nemo, tmp_path)[0] == 0
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "".join(expected_lines())


def test_the_resume_key_is_attribute_annotates() -> None:
    assert (
        sample_key(GOOD[1])
        == "Name a fruit.An apple [[scores: humor=2.5]]Another?A pear, ripe and sweet."
    )


def test_ctrl_c_leaves_whole_lines_and_a_rerun_completes(nemo: NeMoServer, tmp_path: Path) -> None:
    write_input(tmp_path / "in.jsonl")
    # The first request is answered after 3 s: Ctrl-C arrives while it is in flight.
    nemo.faults.append(Fault(503, '{"error":"slow"}', delay=3.0))
    command = [
        sys.executable,
        "-m",
        "steerlm.scoring.annotate",
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(tmp_path / "out.jsonl"),
        "--url",
        nemo.base_url,
        "--batch-size",
        "1",
        "--concurrency",
        "1",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not nemo.reward_requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert nemo.reward_requests, "the CLI sent nothing"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    text = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    assert run(nemo, tmp_path, "--no-progress")[0] == 0
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "".join(expected_lines())

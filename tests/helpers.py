"""Helpers shared by the adapter tests: what reached the scripted server."""

from __future__ import annotations

from steerlm.server import NeMoServer

#: The 13B preset's default label line body.
LABELS = "quality:9,toxicity:0,humor:0,creativity:0,violence:0,helpfulness:9,not_appropriate:0"


def sent_prompt(nemo: NeMoServer, index: int = -1) -> str:
    """The first prompt of request ``index`` that the server received."""
    return str(nemo.received[index]["sentences"][0])


def label_line(prompt: str) -> str:
    """The body of the prompt's last label line, with its newline."""
    return prompt.rsplit("<extra_id_2>", 1)[1]

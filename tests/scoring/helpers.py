"""What the scoring tests share: NeMo-Aligner's rendering, written out as its script does."""

from __future__ import annotations

import json
from typing import Any

from steerlm.server.app import NeMoServer

# NVIDIA/NeMo-Aligner@v0.7.0:examples/nlp/data/steerlm/common.py#L15-L26, as written there.
SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
SYSTEM_PROMPT_TEMPLATE = "<extra_id_0>System\n{value}\n"
USER_TURN_TEMPLATE = "<extra_id_1>User\n{value}\n"
ASSISTANT_TURN_TEMPLATE = "<extra_id_1>Assistant\n{value}\n"
LABEL_PREFIX = "<extra_id_2>"


def attribute_annotate_texts(sample: dict[str, Any]) -> list[str]:
    """The strings attribute_annotate.py#L104-L115 scores for one sample, in order."""
    text = SYSTEM_PROMPT_TEMPLATE.format(value=SYSTEM_PROMPT)
    texts = []
    for turn in sample["conversations"]:
        if turn["from"] == sample["mask"]:
            text += USER_TURN_TEMPLATE.format(value=turn["value"])
        else:
            text += ASSISTANT_TURN_TEMPLATE.format(value=turn["value"])
        if "label" in turn and turn["label"] is not None:
            texts.append(text + LABEL_PREFIX)
    return texts


def sample(question: str, answer: str, label: str | None = "x") -> dict[str, Any]:
    """A sample of NeMo-Aligner's format (preprocess_helpsteer_data.py#L46-L50)."""
    return {
        "system": SYSTEM_PROMPT,
        "mask": "User",
        "conversations": [
            {"from": "User", "value": question, "label": None},
            {"from": "Assistant", "value": answer, "label": label},
        ],
    }


def annotation_text(question: str, answer: str) -> str:
    """What attribute_annotate.py sends for one question and its answer."""
    return attribute_annotate_texts(sample(question, answer))[0]


def infer_body(sentences: list[str], shape: list[int] | None = None) -> dict[str, Any]:
    """A KServe v2 infer request of ``sentences`` (shape ``[N, 1]``, as NeMo-Aligner's)."""
    shape = shape if shape is not None else [len(sentences), 1]
    tensor = {"name": "sentences", "shape": shape, "datatype": "BYTES", "data": sentences}
    return {"inputs": [tensor]}


def infer_bodies(nemo: NeMoServer) -> list[dict[str, Any]]:
    """The JSON bodies the Triton route received, in order."""
    return [json.loads(r["body"]) for r in nemo.reward_requests if r["path"].endswith("/infer")]


def sent_texts(nemo: NeMoServer) -> list[str]:
    """Every text the Triton route received, request by request."""
    return [text for body in infer_bodies(nemo) for text in body["inputs"][0]["data"]]

"""A real Triton server (PyTriton) bound as NeMo-Aligner binds its attribute model.

Run as ``python -m tests.integration_triton.reward_server PORT [MODEL]``: it prints
``ready`` once Triton has loaded the model, and serves until SIGTERM. The binding copies
``RewardModelServer`` (NVIDIA/NeMo-Aligner@v0.7.0:nemo_aligner/algorithms/reward_server.py
#L55-L60 for the tensors, #L94-L120 for the configs); only the model is a stand-in, which
scores each sentence by the dev server's scripted rule
(:func:`steerlm.server.scripted_scorer.scripted_scores`), so both servers agree.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from types import FrameType
from typing import Any

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from steerlm.server.scripted_scorer import STEERLM_ATTRIBUTES, scripted_scores, split_sentence

#: NeMo-Aligner's MAX_BATCH (reward_server.py#L37).
MAX_BATCH = 9999999


@batch
def infer(**inputs: Any) -> dict[str, Any]:
    """Scores of each sentence (rows in request order), as a (N, 9) FP32 array."""
    sentences = inputs["sentences"]  # (N, 1) bytes, as attribute_annotate.py sends them
    rows = [
        scripted_scores(split_sentence(row[0].decode("utf-8")).answer, STEERLM_ATTRIBUTES)
        for row in sentences
    ]
    return {"rewards": np.asarray(rows, dtype=np.float32)}


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Bind and serve until SIGTERM."""
    port = int(sys.argv[1])
    model = sys.argv[2] if len(sys.argv) > 2 else "reward_model"
    config = TritonConfig(allow_http=True, allow_grpc=False, allow_metrics=False, http_port=port)
    signal.signal(signal.SIGTERM, _stop)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=model,
            infer_func=infer,
            inputs=[
                Tensor(name="sentences", shape=(-1,), dtype=bytes, optional=True),
                Tensor(name="tokens", shape=(-1,), dtype=np.int64, optional=True),
                Tensor(name="sequence_lengths", shape=(-1,), dtype=np.int64, optional=True),
            ],
            outputs=[Tensor(name="rewards", shape=(1,), dtype=np.float32)],
            config=ModelConfig(
                batching=True,
                max_batch_size=MAX_BATCH,
                batcher=DynamicBatcher(max_queue_delay_microseconds=2000),
            ),
        )
        triton.run()  # returns once Triton has loaded the model
        print("ready", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # SIGTERM: leave, Triton stops
            signal.pause()


if __name__ == "__main__":
    main()

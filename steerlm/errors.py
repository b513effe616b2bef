"""The one error hierarchy of the SteerLM integrations.

Every error is a :class:`SteerLMError`, so ``except SteerLMError`` catches all of them.
Input errors are also ``ValueError`` and are raised before any network call; the rest
name the URL they were talking to and what came back.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_EXCERPT_CHARS = 300

#: Statuses worth another attempt: a timeout, throttling, and server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# A server error whose text states a failure that the same request would meet again:
# the prompt does not fit the model (NeMo and the dev server name the token counts).
# How servers say that a prompt does not fit: NeMo's style (the dev server), vLLM's
# "maximum context length", llama.cpp's "exceeds the available context size", TensorRT-LLM's
# "exceeds the max sequence length". Anchored to the prompt or context, so that a gateway's
# "context deadline exceeded" or an overload's "queue length exceeded" stay retryable.
_DETERMINISTIC = re.compile(
    r"prompt (?:\d+ )?is (?:\d+ tokens )?too long"
    r"|maximum context length"
    r"|(?:context|sequence) (?:length|size|window)"
    r"|exceeds? the (?:available |model's )?(?:context|max(?:imum)? (?:sequence|seq) length)"
    r"|leaves no room to generate"
    r"|fills the context",
    re.IGNORECASE,
)


def excerpt(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """Shorten ``text`` for an error message, keeping its start."""
    text = text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars in all)"
    return repr(text)


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the choice closest to ``name``; "" when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_names(names: Iterable[str], choices: Iterable[str]) -> str:
    """The unknown ``names``, each with the closest choice: ``'a' (did you mean 'b'?), 'c'``."""
    valid = list(choices)
    hints = []
    for name in names:
        close = difflib.get_close_matches(name, valid, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ", ".join(hints)


class SteerLMError(Exception):
    """Base class of every error raised by the SteerLM integrations."""


class SteerLMInputError(SteerLMError, ValueError):
    """A bad setting, message or option, found before anything was sent."""


class InvalidAttributesError(SteerLMInputError):
    """An attribute key or value that the preset does not accept."""


class SteerLMConnectionError(SteerLMError, ConnectionError):
    """The server could not be reached (refused, unresolvable, reset).

    Attributes:
        url: The server URL (credentials redacted).
        reason: What the connection attempt ran into.
        advice: What to start or set, for a client of another server than the chat
            model's (it replaces the advice on NeMo's and the dev server's chat routes).
        answered_before: The server had answered this process before: it was running and
            has gone (stopped, crashed, restarting), rather than never being there.
    """

    def __init__(
        self, url: str, reason: str, *, answered_before: bool = False, advice: str | None = None
    ) -> None:
        self.url = url
        self.reason = reason
        self.answered_before = answered_before
        if advice is not None and not answered_before:
            # The client of another server (the attribute model) says how to start that one.
            message = f"Could not reach the server at {url}: {reason}. {advice}"
        elif answered_before:
            message = (
                f"The SteerLM server at {url} answered earlier but cannot be reached now: "
                f"{reason}. It has stopped, crashed or is restarting: check its log (the dev "
                "server's helper steerlm.server.process reports how it died)."
            )
        else:
            message = (
                f"Could not reach the SteerLM server at {url}: {reason}. Is it running? Start "
                "it (NeMo's megatron_gpt_eval.py with server=True; for api='openai' an "
                "OpenAI-compatible server such as vLLM; or the local dev server "
                "`steerlm-server`) and point base_url (or STEERLM_BASE_URL) at it."
            )
        super().__init__(message)


class SteerLMTimeoutError(SteerLMConnectionError, TimeoutError):
    """The server did not answer within the timeout."""

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        SteerLMError.__init__(
            self,
            f"The SteerLM server at {url} did not answer within {timeout:g} s. A long "
            "generation or a queue delays it (NeMo serves one request at a time): raise "
            "`timeout`, or lower `max_tokens`.",
        )
        self.url = url
        self.reason = "timeout"


_CONTEXT_FIX = (
    "shorten the conversation or lower max_tokens. Frameworks size their prompts by the "
    "model's context_window setting: set it to the server's context length "
    "(context_window=...) so that retrievers and memories fit what the server holds."
)


class SteerLMServerError(SteerLMError):
    """The server answered with an error: a validation string (HTTP 200) or a bad status.

    Attributes:
        url: The URL requested (credentials redacted).
        status: HTTP status.
        body: The server's error text (the decoded JSON string, or the raw body).
        retryable: Whether another attempt could succeed: 408, 429 and 5xx, unless the
            text states a failure that would repeat (a prompt longer than the context).
        retry_after: Seconds the server asked to wait (``Retry-After`` on 429/503).
        hint: What to change, when the client can tell (e.g. a ``base_url`` that misses
            the API's root); it replaces the advice to read the server's log.
    """

    retry_after: float | None = None

    def __init__(self, url: str, status: int, body: str, hint: str | None = None) -> None:
        self.hint = hint
        self.url = url
        self.status = status
        self.body = body
        self.retryable = status in RETRY_STATUSES and not (
            status >= 500 and _DETERMINISTIC.search(body)
        )
        if status == 200 and _DETERMINISTIC.search(body):
            message = (
                f"The SteerLM server at {url} rejected the request: {body}. The prompt and "
                f"the answer do not fit the model's context: {_CONTEXT_FIX}"
            )
        elif status == 200:
            message = (
                f"The SteerLM server at {url} rejected the request: {body}. "
                "Fix the generation setting it names."
            )
        elif _DETERMINISTIC.search(body):
            message = (
                f"The SteerLM server at {url} answered HTTP {status}: {excerpt(body)}. "
                f"The prompt and the answer do not fit the model's context (retrying "
                f"cannot help): {_CONTEXT_FIX}"
            )
        else:
            message = f"The SteerLM server at {url} answered HTTP {status}: {excerpt(body)}. " + (
                hint or "Check the server's log for the cause."
            )
        super().__init__(message)


class SteerLMRedirectError(SteerLMServerError):
    """The server answered with a redirect (3xx), which is never followed.

    Following it would send the whole prompt, and any credentials, to another address.

    Attributes:
        location: The ``Location`` it pointed to (credentials redacted), or None.
    """

    def __init__(self, url: str, status: int, location: str | None) -> None:
        self.location = location
        SteerLMError.__init__(
            self,
            f"The SteerLM server at {url} answered HTTP {status}, a redirect to "
            f"{location or '(no Location header)'}. Redirects are not followed, so the "
            "prompt never goes to an address you did not choose: set base_url to the "
            "server's real address.",
        )
        self.url = url
        self.status = status
        self.body = ""
        self.retryable = False
        self.hint = None


class SteerLMResponseError(SteerLMError):
    """The server answered HTTP 200 with something that is not a valid generation result."""

    def __init__(self, url: str, problem: str, body: str) -> None:
        self.url = url
        self.problem = problem
        self.body = body
        super().__init__(
            f"The server at {url} sent an answer that is not a generation result: "
            f"{problem}. It sent: {excerpt(body)}. Is base_url pointing at the server's "
            "root (NeMo's text-generation server), or with api='openai' at its API root "
            "(e.g. http://host:8000/v1)?"
        )


class SteerLMStreamEndedError(SteerLMResponseError):
    """A stream ended before the server finished the answer.

    The connection closed with no finish reason and no ``[DONE]``, or a ``200`` answer to
    ``stream: true`` was neither server-sent events nor a JSON completion (a proxy's
    page). The text received so far is in :attr:`partial`.

    Attributes:
        partial: The answer text received before the stream ended.
    """

    def __init__(self, url: str, problem: str, body: str, partial: str = "") -> None:
        self.url = url
        self.problem = problem
        self.body = body
        self.partial = partial
        SteerLMError.__init__(
            self,
            f"The stream from {url} ended before the server finished it: {problem}. "
            f"Received: {excerpt(body)}. Retry the call; if it keeps happening, check the "
            "server's log, or a proxy between it and you that cuts or rewrites streams.",
        )


class SteerLMResponseTooLargeError(SteerLMResponseError):
    """The answer's decoded body is larger than ``max_response_bytes``."""

    def __init__(self, url: str, limit: int) -> None:
        self.limit = limit
        SteerLMError.__init__(
            self,
            f"The answer from {url} is larger than max_response_bytes ({limit} bytes, "
            "counted after decompression); reading stopped there. Raise max_response_bytes "
            "if the server is trusted, or ask for less: lower max_tokens, fewer prompts "
            "per call, no logprobs.",
        )
        self.url = url
        self.problem = f"larger than {limit} bytes"
        self.body = ""


class SteerLMScoresError(SteerLMResponseError):
    """The attribute model answered HTTP 200, but not with the scores asked for.

    No ``rewards`` output, a row width other than the number of attribute names, one row
    too few, or (``api="nim"``) no ``logprobs``: the model served is not the one the
    scorer's settings describe.
    """

    def __init__(self, url: str, problem: str, body: str, fix: str) -> None:
        SteerLMError.__init__(
            self,
            f"The attribute model at {url} answered, but {problem}. {fix} "
            f"It sent: {excerpt(body)}.",
        )
        self.url = url
        self.problem = problem
        self.body = body

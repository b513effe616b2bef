"""The one error hierarchy of the SteerLM integrations.

Every error is a :class:`SteerLMError`, so ``except SteerLMError`` catches all of them.
Input errors are also ``ValueError`` and are raised before any network call; the rest
name the URL they were talking to and what came back.
"""

from __future__ import annotations

_EXCERPT_CHARS = 300


def excerpt(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """Shorten ``text`` for an error message, keeping its start."""
    text = text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars in all)"
    return repr(text)


class SteerLMError(Exception):
    """Base class of every error raised by the SteerLM integrations."""


class SteerLMInputError(SteerLMError, ValueError):
    """A bad setting, message or option, found before anything was sent."""


class InvalidAttributesError(SteerLMInputError):
    """An attribute key or value that the preset does not accept."""


class SteerLMConnectionError(SteerLMError, ConnectionError):
    """The server could not be reached (refused, unresolvable, reset)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"Could not reach the SteerLM server at {url}: {reason}. Is it running? Start "
            "NeMo's megatron_gpt_eval.py with server=True, or the local dev server with "
            "`steerlm-server`, and point base_url (or STEERLM_BASE_URL) at it."
        )


class SteerLMTimeoutError(SteerLMConnectionError, TimeoutError):
    """The server did not answer within the timeout."""

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        SteerLMError.__init__(
            self,
            f"The SteerLM server at {url} did not answer within {timeout:g} s. It serves one "
            "request at a time, so a long generation or a queue delays it: raise `timeout`, "
            "or lower `max_tokens`.",
        )
        self.url = url
        self.reason = "timeout"


class SteerLMServerError(SteerLMError):
    """The server answered with an error: a validation string (HTTP 200) or a bad status."""

    def __init__(self, url: str, status: int, body: str) -> None:
        self.url = url
        self.status = status
        self.body = body
        if status == 200:
            message = (
                f"The SteerLM server at {url} rejected the request: {body}. "
                "Fix the generation setting it names."
            )
        else:
            message = (
                f"The SteerLM server at {url} answered HTTP {status}: {excerpt(body)}. "
                "Check the server's log for the cause."
            )
        super().__init__(message)


class SteerLMResponseError(SteerLMError):
    """The server answered HTTP 200 with something that is not a valid generation result."""

    def __init__(self, url: str, problem: str, body: str) -> None:
        self.url = url
        self.problem = problem
        self.body = body
        super().__init__(
            f"The server at {url} sent an answer that is not a NeMo /generate result: "
            f"{problem}. It sent: {excerpt(body)}. Is base_url pointing at a NeMo "
            "text-generation server?"
        )

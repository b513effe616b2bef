"""Which transport serves which ``api=`` name.

The built-in APIs are listed by module path and imported when first asked for, so a
program that talks to NeMo never imports the OpenAI transport. A new server API is one
module with a :class:`~steerlm.transports.base.Transport` subclass and one entry in
:data:`BUILTIN_TRANSPORTS` (or a :func:`register_transport` call, for a transport that
lives outside this package).
"""

from __future__ import annotations

import importlib

from steerlm.errors import SteerLMInputError, did_you_mean
from steerlm.transports.base import Transport

#: ``api`` name -> ``"module:Class"`` of the built-in transports.
BUILTIN_TRANSPORTS: dict[str, str] = {
    "nemo": "steerlm.transports.nemo:SteerLMClient",
    "openai": "steerlm.transports.openai:OpenAIClient",
}

_registered: dict[str, type[Transport]] = {}


def register_transport(api: str, transport: type[Transport]) -> None:
    """Make ``api=<api>`` select ``transport`` (replacing an earlier registration).

    Raises:
        SteerLMInputError: ``api`` is not a non-empty name, or ``transport`` is not a
            :class:`~steerlm.transports.base.Transport` subclass.
    """
    if not (isinstance(api, str) and api.strip() == api and api):
        raise SteerLMInputError(f"A transport's api name must be a non-empty word, got {api!r}.")
    if not (isinstance(transport, type) and issubclass(transport, Transport)):
        raise SteerLMInputError(
            f"register_transport({api!r}, ...) needs a steerlm.transports.Transport "
            f"subclass, got {transport!r}."
        )
    _registered[api] = transport


def unregister_transport(api: str) -> None:
    """Forget a transport registered with :func:`register_transport` (built-ins stay)."""
    _registered.pop(api, None)


def api_names() -> list[str]:
    """Every name ``api=`` accepts, sorted."""
    return sorted(set(BUILTIN_TRANSPORTS) | set(_registered))


def transport_class(api: str) -> type[Transport]:
    """The transport class of ``api``.

    Raises:
        SteerLMInputError: No transport has that name; the message lists the names and
            suggests the closest.
    """
    found = _registered.get(api)
    if found is not None:
        return found
    path = BUILTIN_TRANSPORTS.get(api) if isinstance(api, str) else None
    if path is None:
        names = api_names()
        hint = did_you_mean(str(api), names)
        raise SteerLMInputError(
            f"Unknown api {api!r}.{hint} Choose one of: {', '.join(map(repr, names))} "
            "('nemo' for NeMo's PUT /generate, 'openai' for an OpenAI-compatible "
            "/v1/completions)."
        )
    module, _, name = path.partition(":")
    transport: type[Transport] = getattr(importlib.import_module(module), name)
    _registered[api] = transport
    return transport

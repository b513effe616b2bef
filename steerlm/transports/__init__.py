"""Server APIs: one transport module each, chosen by the ``api`` setting.

- :mod:`steerlm.transports.base`: :class:`Transport`, what the call pipeline talks to.
- :mod:`steerlm.transports.registry`: which ``api=`` name selects which transport.
- :mod:`steerlm.transports.nemo`: NeMo's ``PUT /generate`` (``api="nemo"``).
- :mod:`steerlm.transports.openai`: OpenAI-compatible ``/completions`` (``api="openai"``).
"""

from steerlm.transports.base import BASE_URL_ENV, Transport, resolve_base_url
from steerlm.transports.registry import (
    api_names,
    register_transport,
    transport_class,
    unregister_transport,
)

__all__ = [
    "BASE_URL_ENV",
    "Transport",
    "api_names",
    "register_transport",
    "resolve_base_url",
    "transport_class",
    "unregister_transport",
]

"""One HTTP request and its answer, as routes see it.

:class:`Exchange` wraps the standard library's request handler: it reads a body with
strict framing (a bad ``Content-Length`` is a 400, an oversized body a 413, a body that
stops arriving a 408), answers with JSON, raw bytes or a chunked stream, and tells
whether the client has hung up. Routes use it and nothing else of the HTTP layer.
"""

from __future__ import annotations

import json
import select
import socket
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

#: Largest request body accepted (HTTP 413 above): 128 long prompts fit many times over.
MAX_BODY_BYTES = 16 * 1024 * 1024


class Exchange:
    """One request (method, path, headers, body) and the means to answer it.

    Args:
        handler: The standard library's handler of the request.
        read_timeout: Seconds without data after which a body counts as not arriving
            (the socket's timeout; named in the 408 answer).
    """

    def __init__(self, handler: BaseHTTPRequestHandler, read_timeout: float) -> None:
        self._handler = handler
        self.read_timeout = read_timeout
        self.method: str = handler.command
        self.path: str = handler.path
        self.headers: Message = handler.headers

    def close_after(self) -> None:
        """Close the connection once this answer is out (no keep-alive)."""
        self._handler.close_connection = True

    def read_body(self) -> bytes | None:
        """The request body, or None after answering a bad ``Content-Length`` or a timeout."""
        declared = self.headers.get("Content-Length")
        if declared is None and self.headers.get("Transfer-Encoding"):
            # Unframed here: the chunks would be read as the next request.
            self.close_after()
            self.send_json(411, {"message": "Send the body with a Content-Length header"})
            return None
        if declared is None:
            return b""  # as Flask: no body, so the JSON cannot be decoded (400)
        declared = declared.strip()
        if not declared.isdigit() or not declared.isascii():
            self.close_after()  # the rest of the stream cannot be framed
            self.send_json(
                400, {"message": f"Content-Length must be a number of bytes, got {declared!r}"}
            )
            return None
        length = int(declared)
        if length > MAX_BODY_BYTES:
            self.close_after()
            self.send_json(
                413,
                {"message": f"The request body of {length} bytes exceeds {MAX_BODY_BYTES} bytes"},
            )
            return None
        try:
            raw = self._handler.rfile.read(length)
        except TimeoutError:
            self.close_after()
            self.send_json(
                408,
                {
                    "message": f"The request body of {length} bytes did not arrive: no data "
                    f"for {self.read_timeout:g} s"
                },
            )
            return None
        if len(raw) < length:  # the client closed its side early: nobody may be listening
            self.close_after()
            self.send_json(
                400, {"message": f"The request body ended after {len(raw)} of {length} bytes"}
            )
            return None
        return raw

    def client_gone(self) -> bool:
        """Whether the client closed its connection (checked between generated tokens)."""
        connection = self._handler.connection
        try:
            poller = select.poll()  # unlike select(), not limited to descriptors below 1024
            poller.register(connection, select.POLLIN | select.POLLHUP | select.POLLERR)
            events = poller.poll(0)
            if not events:
                return False
            if events[0][1] & (select.POLLHUP | select.POLLERR):
                return True
            # Readable with nothing to read means end of stream; a pipelined next request
            # would be data, and the client is still there.
            return bool(connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def send_json(self, status: int, value: Any) -> None:
        """Answer with ``value`` as JSON."""
        self.send_raw(status, (json.dumps(value) + "\n").encode(), "application/json")

    def send_raw(self, status: int, payload: bytes, content_type: str) -> None:
        """Answer with ``payload`` as it is; a client that has gone is not an error."""
        handler = self._handler
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (ConnectionError, TimeoutError):  # the client went away: nobody to tell
            self.close_after()

    def send_redirect(self, status: int, location: str) -> None:
        """Answer with a redirect to ``location`` and no body (as Starlette's
        ``RedirectResponse`` does).

        The request body is read first, as uvicorn discards an unread one: left in the
        socket, it would be taken for the next request on the kept-alive connection.
        """
        if self.method in ("POST", "PUT") and self.read_body() is None:
            return  # a bad body was answered already
        handler = self._handler
        try:
            handler.send_response(status)
            handler.send_header("Location", location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except (ConnectionError, TimeoutError):
            self.close_after()

    def start_chunks(self, content_type: str) -> None:
        """Send a 200 head for a body of chunks (:meth:`send_chunk`, :meth:`end_chunks`).

        Raises:
            ConnectionError: The client has gone (also ``TimeoutError``).
        """
        handler = self._handler
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

    def send_chunk(self, payload: bytes) -> None:
        """Send one chunk and flush it, so the client has it at once.

        Raises:
            ConnectionError: The client has gone (also ``TimeoutError``).
        """
        self._handler.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self._handler.wfile.flush()

    def end_chunks(self) -> None:
        """End a body of chunks.

        Raises:
            ConnectionError: The client has gone (also ``TimeoutError``).
        """
        self._handler.wfile.write(b"0\r\n\r\n")

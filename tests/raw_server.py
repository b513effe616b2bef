"""A TCP server that answers each connection with hand-written bytes: transport faults.

The NeMo-compatible server always speaks correct HTTP. Faults below HTTP (a body cut off,
broken chunked framing or gzip, a drip of one byte at a time, redirects with any headers)
need bytes written by hand. Each connection reads one request, records it, and plays the
next queued script; with nothing queued it answers like NeMo (the prompt echoed plus
:data:`ANSWER`). Every answer closes its connection.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ANSWER = "Hello there."
#: Credentials for base_url in tests: they must reach the wire and nothing else.
SECRET = "s3cr3t-t0ken"
BASIC_AUTH = "Basic YWxpY2U6czNjcjN0LXQwa2Vu"  # alice:s3cr3t-t0ken


def with_credentials(base_url: str) -> str:
    """``base_url`` with ``alice:SECRET@`` in it."""
    return base_url.replace("://", f"://alice:{SECRET}@", 1)


@dataclass(frozen=True)
class Pause:
    """Wait this many seconds before the next step."""

    seconds: float


@dataclass(frozen=True)
class Drip:
    """Send ``data`` one byte at a time, ``interval`` seconds apart."""

    data: bytes
    interval: float


# A step: bytes to send, a pause, a drip, or a function of the request's JSON body.
Step = bytes | Pause | Drip | Callable[[dict[str, Any]], bytes]


@dataclass
class Request:
    """One request as received: request line, headers (lower-case names), body."""

    line: str
    headers: dict[str, str]
    body: bytes = b""
    json: Any = field(default=None)


def response(
    status: int = 200,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    *,
    length: int | None = None,
) -> bytes:
    """An HTTP/1.1 answer; ``Content-Length`` is the body's unless given or chunked."""
    payload = body.encode() if isinstance(body, str) else body
    head = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if "Transfer-Encoding" not in head:
        head.setdefault("Content-Length", str(len(payload) if length is None else length))
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def answer_body(request: dict[str, Any], text: str = ANSWER) -> bytes:
    """NeMo's answer to ``request``: each prompt echoed with ``text`` after it."""
    return json.dumps({"sentences": [p + text for p in request["sentences"]]}).encode()


def ok(request: dict[str, Any] | None) -> bytes:
    """A complete, correct NeMo answer; a request without a JSON body (a GET, such as the
    client's one-time ``/health`` probe) gets NeMo's 404, as its Flask app answers."""
    if request is None:
        return response(404, b'{"message": "Not Found"}')
    return response(200, answer_body(request))


def gzipped_ok(request: dict[str, Any]) -> bytes:
    """A correct answer, gzip-encoded."""
    return response(200, gzip.compress(answer_body(request)), {"Content-Encoding": "gzip"})


class RawServer:
    """The server: ``queue(script, ...)``; ``requests`` holds what arrived.

    Args:
        tls: Serve HTTPS with this server context (the client must trust its certificate).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.scripts: deque[list[Step]] = deque()
        self.requests: list[Request] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def queue(self, *scripts: list[Step]) -> None:
        """Play these scripts on the next connections, in order."""
        self.scripts.extend(scripts)

    def close(self) -> None:
        self._closed.set()
        # Wake the accept() call, then wait for the handlers (drips stop on a dead peer).
        with socket.create_connection(("127.0.0.1", self.port)):
            pass
        self._accepter.join(5)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            if self._closed.is_set():
                conn.close()
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        if self._tls is not None:
            try:
                conn = self._tls.wrap_socket(conn, server_side=True)  # owns the socket now
            except OSError:
                conn.close()
                return
        with conn:
            try:
                request = self._read_request(conn)
                if request is None:
                    return
                self.requests.append(request)
                script = self.scripts.popleft() if self.scripts else [ok]
                for step in script:
                    self._play(conn, step, request)
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(1)
                while conn.recv(65536):  # let the client close first: no RST on close
                    pass
            except OSError:
                pass  # the client gave up (deadline, size cap): nothing to tell

    @staticmethod
    def _play(conn: socket.socket, step: Step, request: Request) -> None:
        if isinstance(step, Pause):
            time.sleep(step.seconds)
        elif isinstance(step, Drip):
            for index in range(len(step.data)):
                conn.sendall(step.data[index : index + 1])
                time.sleep(step.interval)
        elif isinstance(step, bytes):
            conn.sendall(step)
        else:
            conn.sendall(step(request.json))

    @staticmethod
    def _read_request(conn: socket.socket) -> Request | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for header in header_lines:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        return Request(line, headers, body, parsed)

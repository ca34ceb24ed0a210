"""A local HTTP server that records the headers every request carries.

Stands in for a Databricks workspace: the real Databricks SDK, SQL connector
(Thrift over plain HTTP and SEA), ``requests`` / ``httpx`` / ``urllib3`` talk to it
and tests read back exactly what arrived. Stdlib only; threads; binds 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple


class Recorded(NamedTuple):
    method: str
    path: str
    headers: Dict[str, str]  # header names lower-cased; the last value wins

    @property
    def user_agent(self) -> Optional[str]:
        return self.headers.get("user-agent")


#: (method, path) -> (status, JSON body); a callable gets the request and returns them
Route = Callable[[Recorded], Tuple[int, Any]]


class _QuietServer(ThreadingHTTPServer):
    """Clients that give up mid-request (a fail-fast retry policy) are not errors here."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class HeaderRecorder:
    """``with HeaderRecorder() as peer: ... peer.url ... peer.requests``.

    Every request is answered by the first matching route, else by ``default``
    (``404 {}``: the SQL connector fails fast on it, the SDK raises NotFound).
    """

    def __init__(self, default: Tuple[int, Any] = (404, {"error_code": "NOT_FOUND"})) -> None:
        self.requests: List[Recorded] = []
        self.routes: Dict[Tuple[str, str], Any] = {}
        self.default = default
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- set-up ---------------------------------------------------------------------
    def route(self, method: str, path: str, answer: Any) -> None:
        """Answer ``method path`` with ``answer``: (status, body) or a :data:`Route`."""
        self.routes[(method.upper(), path)] = answer

    def start(self) -> HeaderRecorder:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each keep-alive answer waits ~40 ms

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                rec = Recorded(self.command, path, {k.lower(): v for k, v in self.headers.items()})
                with peer._lock:
                    peer.requests.append(rec)
                answer = peer.routes.get((self.command, path), peer.default)
                status, body = answer(rec) if callable(answer) else answer
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = self._make_server(Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _make_server(self, handler: Any) -> ThreadingHTTPServer:
        """The listening server (a subclass may speak TLS)."""
        return _QuietServer(("127.0.0.1", 0), handler)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HeaderRecorder:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- reading ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "peer not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> List[Recorded]:
        """The requests recorded so far (a copy, safe while requests arrive)."""
        with self._lock:
            return list(self.requests)

    def user_agents(self, path: Optional[str] = None) -> List[str]:
        """The User-Agent header of each request so far (optionally only for ``path``)."""
        with self._lock:
            return [
                r.headers.get("user-agent", "")
                for r in self.requests
                if path is None or r.path == path
            ]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

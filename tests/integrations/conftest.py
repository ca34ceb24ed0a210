"""Fixtures for the integration tests: the PostgreSQL server's version, and a redirecting
HTTP server for the REST clients (requests, httpx, urllib3, aiohttp)."""

from __future__ import annotations

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List, Optional

import pytest

from ua_autotag.verify.http_peer import HeaderRecorder


@pytest.fixture(scope="session")
def pg_version(pg_dsn: str) -> int:
    """``server_version_num`` of the test server (it decides how non-ASCII is shown)."""
    out = subprocess.run(
        ["psql", pg_dsn, "-tAc", "SHOW server_version_num"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return int(out.stdout.strip())


def serve(handler: type) -> tuple[ThreadingHTTPServer, str]:
    """A threaded HTTP server on a free 127.0.0.1 port, serving ``handler`` in the
    background: (the server, its base URL). ``server.shutdown()`` stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Redirector:
    """A 127.0.0.1 server answering every request with 302 to ``target``."""

    def __init__(self, target: str) -> None:
        outer = self
        self.user_agents: List[Optional[str]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.user_agents.append(self.headers.get("User-Agent"))
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server, self.url = serve(Handler)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirect_to_localhost(http_peer: HeaderRecorder) -> Iterator[Redirector]:
    server = Redirector(f"http://localhost:{http_peer.port}/landed")
    yield server
    server.close()

"""A small, reusable HTTP server for crawl tests: real sockets on 127.0.0.1, one thread per connection, each
path answered by a `Reply` (status, headers, body, optional delay, hang or streaming) or a function of the
path (for infinite link traps). It records every path requested, in order, so tests can check exactly
what a crawler fetched."""

from __future__ import annotations

import gzip
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"})
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer (until the server stops)
    stream: bool = False  # no Content-Length: send the body in chunks, then close
    times: int = 0  # answer with `then` after this many requests (0: always this reply)
    then: Reply | None = None


Route = Reply | Callable[[str], Reply | None]


def html(title: str, body: str, links: list[str] | None = None, charset: str = "utf-8") -> str:
    nav = " ".join(f"<a href='{href}'>{href}</a>" for href in links or [])
    return (f"<!doctype html><html><head><meta charset='{charset}'><title>{title}</title></head><body>"
            f"<nav>{nav}</nav><article><h1>{title}</h1>{body}</article></body></html>")


def gzip_bomb(size: int) -> bytes:
    """`size` bytes of spaces, gzipped to about a thousandth of that."""
    return gzip.compress(b" " * size, compresslevel=9)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default (5) drops connections when a crawler opens 64 at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a crawler hanging up on an oversized response is part of the test, not an error


class FaultServer:
    def __init__(self, routes: dict[str, Route] | None = None, prefixes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.prefixes: dict[str, Route] = dict(prefixes or {})
        self.log: list[str] = []
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                server.serve(self)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def requests(self, exclude: tuple[str, ...] = ("/robots.txt",)) -> list[str]:
        with self.lock:
            return [p for p in self.log if p not in exclude]

    def _lookup(self, path: str) -> Reply | None:
        route = self.routes.get(path)
        if route is None:
            for prefix, candidate in self.prefixes.items():
                if path.startswith(prefix):
                    route = candidate
                    break
        if callable(route):
            route = route(path)
        return route

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        with self.lock:
            self.log.append(path)
            self.counts[path] += 1
            seen = self.counts[path]
        reply = self._lookup(path) or Reply(404, b"<html><body>not found</body></html>")
        if reply.times and seen > reply.times and reply.then is not None:
            reply = reply.then
        if reply.hang:
            self.stopping.wait(60)
            return
        if reply.delay:
            time.sleep(reply.delay)
        try:
            handler.send_response(reply.status)
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            if reply.stream:
                handler.send_header("Connection", "close")
                handler.end_headers()
                for start in range(0, len(reply.body), 65536):
                    handler.wfile.write(reply.body[start:start + 65536])
                handler.close_connection = True
                return
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the crawler gave up on this response (size limit): expected

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

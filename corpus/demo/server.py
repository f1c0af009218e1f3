"""A real HTTP server on 127.0.0.1 for the bundled sample site (and for tests): it logs every path
it serves, so a test can prove what the crawler did and did not fetch."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet; record instead
        self.server.requests.append(self.path)  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path.split("?")[0] == "/sitemap.xml":
            path = Path(self.directory) / "sitemap.xml"
            if path.exists():
                host = f"http://{self.headers.get('Host', '127.0.0.1')}/"
                body = path.read_bytes().replace(b"http://HOST/", host.encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        super().do_GET()


class SiteServer:
    """Serve `root` on 127.0.0.1 (a free port by default) in a background thread."""

    def __init__(self, root: str | Path, port: int = 0) -> None:
        handler = functools.partial(_Handler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def requests(self) -> list[str]:
        return list(self.httpd.requests)  # type: ignore[attr-defined]

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def demo_site_root() -> Path:
    return Path(__file__).parent / "site"

"""A real HTTPS server on 127.0.0.1 for tests (Python's ssl and http.server in a thread).

::

    with HttpsServer(cert_files) as web:
        web.routes["/.well-known/mta-sts.txt"] = (200, "text/plain", b"version: STSv1...")
        web.port                                   # the port it listens on

Each route maps a path to (status, content type, body); an unknown path is a 404.
A status of 3xx sends ``Location: <body>``.  :attr:`HttpsServer.requests` records
(Host header, path) of every request.
"""
from __future__ import annotations

import http.server
import ssl
import threading

from tests.support.certs import CertFiles


class HttpsServer:
    """HTTPS on 127.0.0.1 with a certificate from :mod:`tests.support.certs`."""

    def __init__(self, files: CertFiles) -> None:
        self.files = files
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "HttpsServer":
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                server.requests.append((self.headers.get("Host", ""), self.path))
                status, ctype, body = server.routes.get(
                    self.path, (404, "text/plain", b"not found\n"))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", body.decode())
                    body = b""
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.files.cert, self.files.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = self._thread = None

    def __enter__(self) -> "HttpsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

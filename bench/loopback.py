"""Loopback receivers for dispatch throughput, in a process of their own so that they do not
compete with the dispatcher for the interpreter: aiosmtpd's SMTP server and the standard
library's ThreadingHTTPServer, both on 127.0.0.1, accepting everything."""

from __future__ import annotations

import multiprocessing
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller


class _Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


class _Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook receiver would
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(ports: Any, stop: Any) -> None:
    smtp = Controller(_Accept(), hostname="127.0.0.1", port=_free_port())
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    ports.send((smtp.port, http.server_address[1]))
    stop.wait()
    http.shutdown()
    smtp.stop()


class Receivers:
    """`with Receivers() as r:` SMTP on `r.smtp_port`, a webhook at `r.webhook_url`."""

    def __enter__(self) -> Receivers:
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        self._stop = context.Event()
        self._process = context.Process(target=_serve, args=(send, self._stop), daemon=True)
        self._process.start()
        send.close()  # the child holds the only writer: its death ends `recv` with EOFError
        self.smtp_port, http_port = receive.recv()
        self.webhook_url = f"http://127.0.0.1:{http_port}/hook"
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()

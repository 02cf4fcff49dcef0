"""An in-process Cyclos 4 REST API on a real socket (127.0.0.1, a free port) for the pull tests.

It serves ``GET /api/transfers``, ``/api/users`` and ``/api/system/accounts`` in the
documented shape from a :class:`~circulate.generate.cyclos_api.CyclosApiData` (a generated
scheme's ground truth), pages them with ``page`` / ``pageSize`` and the ``X-Total-Count``,
``X-Page-Size``, ``X-Current-Page`` and ``X-Has-Next-Page`` headers, honours
``datePeriod=<begin>,<end>`` (both ends included, as a server may) and refuses a wrong
``Access-Client-Token`` with 401. :meth:`CyclosServer.fail` queues faults: a status
(optionally with ``Retry-After``), a body that is cut short, or a connection dropped
mid-body. Every request is recorded with its headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from circulate.generate.cyclos_api import CyclosApiData

TOKEN = "test-access-client-token-5f2c9a"


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with this instead of the data."""

    path: str
    page: int | None = None
    times: int = 1
    status: int = 500
    retry_after: str | None = None
    body: bytes | None = None
    drop_connection: bool = False


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class CyclosServer:
    data: CyclosApiData
    token: str = TOKEN
    url: str = ""
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    max_page_size: int = 1000

    def fail(self, path: str, **kwargs: Any) -> None:
        self.faults.append(Fault(path, **kwargs))

    def requested(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _fault(self, path: str, page: int) -> Fault | None:
        for fault in self.faults:
            if fault.path == path and fault.page in (None, page) and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.requests.append(Request(parts.path, query, dict(handler.headers.items())))
        if handler.headers.get("Access-Client-Token") != self.token:
            self._send(handler, 401, {"code": "login"})
            return
        page = int(query.get("page", "0"))
        fault = self._fault(parts.path, page)
        if fault is not None:
            self._send_fault(handler, fault)
            return
        if parts.path == "/api/transfers":
            items = self._transfers(query.get("datePeriod"))
        elif parts.path == "/api/users":
            groups = set(query["groups"].split(",")) if query.get("groups") else None
            items = [
                u for u in self.data.users if groups is None or u["group"]["internalName"] in groups
            ]
        elif parts.path == "/api/system/accounts":
            self._send(handler, 200, self.data.system_accounts)
            return
        else:
            self._send(handler, 404, {"code": "notFound"})
            return
        size = min(int(query.get("pageSize", "40")), self.max_page_size)
        chunk = items[page * size : (page + 1) * size]
        headers = {
            "X-Total-Count": str(len(items)),
            "X-Page-Size": str(size),
            "X-Current-Page": str(page),
            "X-Has-Next-Page": "true" if (page + 1) * size < len(items) else "false",
        }
        self._send(handler, 200, chunk, headers)

    def _transfers(self, period: str | None) -> list[dict[str, Any]]:
        items = self.data.transfers
        if period:
            begin, end = (datetime.fromisoformat(p) for p in period.split(","))
            items = [t for t in items if begin <= datetime.fromisoformat(t["date"]) <= end]
        return sorted(items, key=lambda t: (datetime.fromisoformat(t["date"]), t["id"]))

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = json.dumps(body).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(raw)

    @staticmethod
    def _send_fault(handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        raw = fault.body if fault.body is not None else b'{"code": "unexpected"}'
        handler.send_response(fault.status)
        handler.send_header("Content-Type", "application/json")
        if fault.retry_after is not None:
            handler.send_header("Retry-After", fault.retry_after)
        # A dropped connection promises more bytes than it sends.
        handler.send_header("Content-Length", str(len(raw) + (100 if fault.drop_connection else 0)))
        handler.end_headers()
        handler.wfile.write(raw)
        if fault.drop_connection:
            handler.close_connection = True


@contextmanager
def serve(data: CyclosApiData) -> Iterator[CyclosServer]:
    """Run a :class:`CyclosServer` on a free port for the ``with`` block."""
    server = CyclosServer(data)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()

"""A worker's probes over HTTP: ``/healthz``, ``/readyz`` and ``/metrics``.

On a thread of its own (the standard library's threading server), not on Faust's event
loop: a loop that stalls must still be seen failing ``/healthz``, which it could not
answer itself. Probes answer JSON; ``/metrics`` is the Prometheus text format.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streaming.worker_metrics import WorkerHealth

log = logging.getLogger(__name__)


class HealthServer:
    """Serving ``health`` on ``host:port`` (0: a free port, see :attr:`port`) until
    :meth:`close`."""

    def __init__(self, health: WorkerHealth, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"health": health})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="monitor-health", daemon=True)
        self._thread.start()
        log.info("serving /healthz, /readyz and /metrics on %s:%d", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    health: WorkerHealth

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.health.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            alive, reason = self.health.liveness()
            self._json(200 if alive else 503, {"alive": alive, "reason": reason})
        elif path == "/readyz":
            readiness = self.health.readiness()
            self._json(200 if readiness.ready else 503,
                       readiness.as_json(self.health.ready_lag_s))
        else:
            self._json(404, {"error": f"no {path}: try /healthz, /readyz or /metrics"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)  # probes every few seconds

"""Where alerts land until a team wires its own: Alertmanager's webhook, one JSON line per alert.

``monitoring/alertmanager.yml`` sends ``page`` alerts to ``/page`` and ``ticket`` alerts to
``/ticket`` here. Each alert in a notification becomes one line on stdout (``docker compose logs
alert-log``, ``kubectl logs deploy/alertmanager -c alert-log``)::

    {"route": "page", "status": "firing", "alertname": "MnistModelHarmful", ...}

It runs beside Alertmanager (same network namespace: compose's ``network_mode`` or the same
pod), so the URL in alertmanager.yml is loopback everywhere. Standard library only; the monitor
image carries it. Replace it with Slack, e-mail or a pager in ``alertmanager.yml`` (commented
examples there) and keep it as a second receiver if a written trail is wanted.

    python monitoring/alert_log.py --port 9095     (0: any free port; the first line names it)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("alert_log")

MAX_BODY = 1 << 20  # a notification is a few kB; refuse what cannot be one


def lines(route: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per alert of a webhook notification.

    Args:
        route: The path it came in on, without the slash (``page``, ``ticket``).
        payload: Alertmanager's webhook body.

    Returns:
        Records with the route, receiver, status, alert name, severity, every label, the
        summary and runbook, and the start and end times.
    """
    records = []
    for alert in payload.get("alerts", []):
        labels: dict[str, str] = alert.get("labels", {})
        annotations: dict[str, str] = alert.get("annotations", {})
        records.append({
            "route": route,
            "receiver": payload.get("receiver"),
            "status": alert.get("status"),
            "alertname": labels.get("alertname"),
            "severity": labels.get("severity"),
            "labels": labels,
            "summary": annotations.get("summary"),
            "runbook_url": annotations.get("runbook_url"),
            "startsAt": alert.get("startsAt"),
            "endsAt": alert.get("endsAt"),
        })  # fmt: skip
    return records


class Handler(BaseHTTPRequestHandler):
    """POST a webhook notification to any path; GET answers 200 (a liveness probe)."""

    def do_POST(self) -> None:
        """Log each alert of the notification as a JSON line; 400 for a body that is not one."""
        size = int(self.headers.get("Content-Length") or 0)
        if size <= 0 or size > MAX_BODY:
            self.send_error(HTTPStatus.BAD_REQUEST, "send Alertmanager's JSON webhook body")
            return
        try:
            payload = json.loads(self.rfile.read(size))
            records = lines(self.path.strip("/") or "default", payload)
        except (ValueError, AttributeError) as err:
            self.send_error(HTTPStatus.BAD_REQUEST, f"not an Alertmanager webhook body: {err}")
            return
        for record in records:
            sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stdout.flush()
        self.send_response(HTTPStatus.OK)
        self.end_headers()

    def do_GET(self) -> None:
        """Alive."""
        self.send_response(HTTPStatus.OK)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ANN401 - http.server's signature
        """Requests are not logged: the alerts are the log."""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (docker stop, kubelet) stops like Ctrl-C: exit 0 at once


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 on a clean stop.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=9095, help="port (0: any free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    log.info("alert-log listening on http://%s:%s", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The draw-a-digit page: ``GET /`` and its own static files, for a person trying the model.

The page calls the same public API as any client (``/metadata``, ``/predict``,
``/predict/image``, ``/feedback``), so what it shows is what the API answers. It loads nothing
from outside the service, and a strict Content-Security-Policy (no inline script or style, no
other origin) is sent with it and its files.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

WEB_DIR = Path(__file__).with_name("web")
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
bp = Blueprint("web", __name__, static_folder="web", static_url_path="/ui")


@bp.get("/")
def index() -> Response:
    """The page itself: HTML only, its script and styles are files under ``/ui/``."""
    return send_from_directory(WEB_DIR, "index.html", max_age=0)


@bp.after_request
def secure(response: Response) -> Response:
    """The page's headers: what it may load and run, and no sniffing or framing."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response

"""The prediction service: a Flask application factory for Gunicorn.

``gunicorn -c gunicorn.conf.py "app:create_app()"``. Nothing here imports the training package:
the service depends only on the exported SavedModel (or its registered copy in MLflow).
"""

from __future__ import annotations

__version__ = "0.1.0"

from app.factory import create_app

__all__ = ["__version__", "create_app"]

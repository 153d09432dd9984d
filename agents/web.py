"""The worker's pages on Faust's web server (aiohttp): metrics, stats and the live dashboard.

* ``GET /metrics``: the Prometheus text format (agents.metrics);
* ``GET /stats.json``: the same figures as one JSON document, for the dashboard;
* ``GET /dashboard``: a self-contained HTML page (no external scripts: it must work offline)
  that polls ``/stats.json`` every second.

Registered only when the web server is enabled (``LIVEPROFILES_WEB_ENABLED``).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import faust
import orjson

from agents.metrics import CONTENT_TYPE, WorkerMetrics

__all__ = ["dashboard_html", "register_pages"]


def dashboard_html() -> str:
    """The dashboard page, shipped as package data next to this module."""
    return resources.files("agents").joinpath("dashboard.html").read_text(encoding="utf-8")


def register_pages(app: faust.App, metrics: WorkerMetrics) -> None:
    page = dashboard_html()

    @app.page("/metrics")
    async def prometheus(self: Any, request: Any) -> Any:
        # aiohttp refuses a charset in content_type=, so the whole header goes in as is.
        return self.bytes(metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/stats.json")
    async def stats(self: Any, request: Any) -> Any:
        body = orjson.dumps(metrics.snapshot(), option=orjson.OPT_NON_STR_KEYS)
        return self.bytes(body, content_type="application/json")

    @app.page("/dashboard")
    async def dashboard(self: Any, request: Any) -> Any:
        return self.html(page)

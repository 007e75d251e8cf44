"""backtest.html: backtest.json drawn for people, self-contained like report.html (page.py: inline CSS and JS
under a Content-Security-Policy, autoescaped templates). This module works out the geometry; the markup is
templates/backtest.html.j2."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from .html_report import _Axis, _finite
from .page import render_page

POLICY_COLOURS = {"configured": "#0073bb", "never": "#d13212", "always": "#1d8102"}
W, H, LEFT, RIGHT, TOP, BOTTOM = 760.0, 270.0, 56.0, 150.0, 16.0, 46.0


def write_backtest_html(document: dict[str, Any], out_path: Path) -> Path:
    out_path.write_text(render_backtest(document), encoding="utf-8")
    return out_path


def render_backtest(document: dict[str, Any]) -> str:
    policies = document.get("policies") or {}
    return render_page("backtest.html.j2", "backtest.js", "report.css", document=document, policies=policies,
                       colours={name: POLICY_COLOURS.get(name, "#545b64") for name in policies},
                       chart=metric_chart(policies, document.get("history") or {}),
                       costs=cost_bars(policies)) + "\n"


def _time(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def metric_chart(policies: dict[str, Any], history: dict[str, Any]) -> dict[str, Any]:
    """The realized metric of each policy's serving model per labelled batch over the history's simulated time,
    the threshold, and a mark at each training run the policy started after its first."""
    points = {name: [(_time(p.get("at")), _finite(p.get("metric"))) for p in result.get("timeline") or []]
              for name, result in policies.items()}
    runs = {name: [_time(r.get("started_at")) for r in (result.get("runs") or [])[1:]]
            for name, result in policies.items()}
    threshold = next((_finite(r.get("threshold")) for r in policies.values() if r.get("threshold") is not None), None)
    times = [t for t in (_time(history.get("start")), _time(history.get("end"))) if t is not None] + \
            [t for series in points.values() for t, _ in series if t is not None]
    low, high = (min(times), max(times)) if times else (0.0, 1.0)
    span = (high - low) or 1.0
    y = _Axis([v for series in points.values() for _, v in series] + [threshold], H, TOP, BOTTOM)

    def x(moment: float | None) -> float | None:
        return None if moment is None else LEFT + (moment - low) / span * (W - LEFT - RIGHT)

    lines = {name: [(x(t), y(v), v) for t, v in series if t is not None and v is not None]
             for name, series in points.items()}
    marks = {name: [x(t) for t in series if t is not None] for name, series in runs.items()}
    days = span / 86400
    return {"w": W, "h": H, "left": LEFT, "right": W - RIGHT, "floor": H - BOTTOM, "lines": lines, "marks": marks,
            "threshold": threshold, "y_threshold": y(threshold), "start": low, "days": days, **y.frame(),
            "metric": next((r.get("metric") for r in policies.values() if r.get("metric")), "metric")}


def cost_bars(policies: dict[str, Any]) -> list[dict[str, Any]]:
    top = max((_finite(r.get("cost_usd")) or 0.0 for r in policies.values()), default=0.0) or 1.0
    return [{"policy": name, "cost": _finite(r.get("cost_usd")) or 0.0,
             "w": (_finite(r.get("cost_usd")) or 0.0) / top * 360, "breakdown": r.get("cost_breakdown_usd") or {},
             "compute": r.get("compute_seconds"), "retrains": r.get("retrains")} for name, r in policies.items()]

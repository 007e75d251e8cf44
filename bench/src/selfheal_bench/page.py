"""Self-contained HTML pages (report.html): Jinja2 templates with autoescaping, CSS and JS inlined from
files beside them, and a Content-Security-Policy that allows exactly the page's own script and nothing
from the network."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

COLOURS = {"succeeded": "#1d8102", "failed": "#d13212", "caught": "#ec7211", "running": "#0073bb",
           "deployed": "#1d8102", "registered": "#0073bb", "rejected": "#ec7211", "rolled_back": "#d13212"}
GREY = "#545b64"


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("selfheal_bench", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(seconds=seconds, clock=clock, number=number, shorten=shorten, colour=colour,
                       package=package_name, json_data=json_data)
    return env


def render_page(template: str, script: str, styles: str, **context: Any) -> str:
    """The page, with its stylesheet and script (files beside the templates) inlined under a CSP."""
    env = environment()
    loader = env.loader
    assert loader is not None
    code = loader.get_source(env, script)[0]
    css = loader.get_source(env, styles)[0]
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
    # Our own text: the policy holds no quote that would end its attribute.
    return env.get_template(template).render(policy=Markup(policy), css=Markup(css), script=Markup(code),  # noqa: S704
                                             **context)


def json_data(value: Any) -> Markup:
    """JSON for a non-executable <script type="application/json"> block: nothing in it can close the block."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # noqa: S704 - escaped above for this context


def clock(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S") if epoch else "—"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    # no-break spaces: a duration never wraps inside a table cell
    return f"{value:.1f}\u00a0s" if value < 90 else f"{int(value // 60)}\u00a0min {value % 60:.0f}\u00a0s"


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def shorten(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def colour(key: Any) -> str:
    return COLOURS.get(str(key), GREY)


def package_name(arn: str | None) -> str:
    """`…:model-package/selfheal-churn/3` → `selfheal-churn/3`."""
    return arn.split("model-package/")[-1] if arn else "—"


def nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values for an axis from low to high, about `count` of them."""
    step = nice_step((high - low) / count)
    tick, found = math.ceil(low / step) * step, []
    while tick <= high:
        found.append(tick)
        tick += step
    return found

"""Every scenario in one run, its figures and table: `python -m selfheal_bench.reliability [--full] [--only NAMES]`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfheal.console import library_logs_to

from ..localcloud import LocalCloud
from .burst import Burst, burst
from .core import Inbox, Sizes, sizes
from .crashes import Counted, crash_in_ingest, crash_in_pipeline, throttle_in_pipeline
from .hostile import Catalogue, InputOutcome, hostile_events, hostile_uploads
from .serving_story import Story, serving_story
from .storm import Storm, storm

# -- the figures -----------------------------------------------------------------------------------------------


SCENARIOS = ("story", "hostile-uploads", "hostile-events", "burst", "storm", "crash-ingest", "crash-pipeline",
             "throttle-pipeline")
CRASHES = {"crash-ingest": crash_in_ingest, "crash-pipeline": crash_in_pipeline,
           "throttle-pipeline": throttle_in_pipeline}


def figures(story: Story, catalogue: Catalogue, events: list[InputOutcome], burst_: Burst | None,
            storm_: Storm | None, counted: list[Counted], size: Sizes, seconds: float,
            scenarios: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    """The run's figures; a scenario left out (--only) has none: its section is null or empty."""
    faults = [{"scenario": f"story: {s.step.what}", "held": not s.problems(), **f.as_dict()}
              for s in story.steps for f in s.faults]
    faults += [{"scenario": f"story: {d.event} twice", "held": not d.problems(), **f.as_dict()}
               for d in story.duplicates for f in d.faults]
    faults += [{"scenario": c.name, "held": not c.problems(), **f.as_dict()} for c in counted for f in c.faults]
    inputs = [o.as_dict() for o in [*catalogue.outcomes, *events, *story.payloads]]
    traffic = [a for s in story.steps for a in s.answers or []] + [a for d in story.duplicates for a in d.answers]
    canary = sum(s.new_variant_invocations for s in story.steps if s.step.canary_errors)
    return {
        "size": size.name, "seconds": round(seconds, 1), "scenarios": list(scenarios),
        "problems": story.problems() + catalogue.problems() + (burst_.problems() if burst_ else [])
        + (storm_.problems() if storm_ else [])
        + [f"{c.name}: {p}" for c in counted for p in c.problems()]
        + [f"{o.name}: {o.problem}" for o in events if o.problem],
        "faults": faults,
        "inputs": inputs,
        "traffic": {"requests": len(traffic), "answered": sum(a.status == 200 for a in traffic),
                    "server_errors": sum(a.status >= 500 for a in traffic),
                    "requests_to_failing_canaries": canary},
        "duplicates": [{"event": d.event, "deliveries": d.deliveries, "runs_started": d.started, "outcome": d.outcome}
                       for d in story.duplicates],
        "burst": burst_.summary() if burst_ else None,
        "storm": storm_.summary() if storm_ else None,
    }


def table(result: dict[str, Any]) -> str:
    faults, inputs, burst_, storm_ = result["faults"], result["inputs"], result["burst"], result["storm"]
    traffic = result["traffic"]
    rows = [
        ("scenarios", ", ".join(result["scenarios"])),
        ("faults injected", f"{len(faults)} (fired {sum(f['fired'] for f in faults)} times)"),
        ("faults survived as promised", f"{sum(f['held'] for f in faults)} of {len(faults)}"),
        ("hostile inputs tried", str(len(inputs))),
        ("rejected correctly", f"{sum(i['held'] for i in inputs)} of {len(inputs)}"),
    ]
    if "story" in result["scenarios"]:
        rows.append(("requests during the faults",
                     f"{traffic['requests']}, {traffic['answered']} answered; {traffic['server_errors']} server "
                     "errors, all from a failing canary before its alarm rolled it back "
                     f"({traffic['requests_to_failing_canaries']} requests reached it)"))
    rows += [(f"duplicate {d['event']}", f"{d['deliveries']} deliveries, {d['runs_started']} run started")
             for d in result["duplicates"]]
    if burst_:
        rows += [("uploads in the burst", f"{burst_['deliveries']} ({burst_['redeliveries']} redelivered) across "
                                          f"{len(burst_['in_flight_max'])} models in {burst_['seconds']} s: "
                                          f"{burst_['datasets']} datasets, {burst_['quarantined']} quarantined"),
                 ("uploads lost", str(burst_["lost"])),
                 ("runs in flight per model, max",
                  f"{max(burst_['in_flight_max'].values())} ({burst_['runs']} runs)")]
    if storm_:
        rows.append(("retrains vs cap", f"{storm_['retrains']} in {storm_['simulated_hours']} h of drift reported "
                                        f"every {storm_['tick_minutes']} min (cap {storm_['daily_cap']}/day, cooldown "
                                        f"{storm_['cooldown_minutes']} min; held back by the cooldown "
                                        f"{storm_['suppressed'].get('cooldown', 0)}, by the cap "
                                        f"{storm_['suppressed'].get('daily_cap', 0)})"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", "problems:" if result["problems"] else "every promise held"]
    lines += [f"  - {p}" for p in result["problems"]]
    return "\n".join(lines)


def run_all(work: Path, size: Sizes, echo: Callable[[str], None] = print,
            only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    """The scenarios asked for (all by default, in SCENARIOS' order), each on a fresh local cloud under `work`."""
    started = time.monotonic()
    story, catalogue, events = Story(), Catalogue([], []), []
    burst_: Burst | None = None
    storm_: Storm | None = None
    counted: list[Counted] = []
    for name in (name for name in SCENARIOS if name in only):
        echo(f"{name} ...")
        data = work / name / "data"
        with LocalCloud(work / name / "cloud") as cloud:
            if name == "story":
                story = serving_story(cloud, data, size)
            elif name == "hostile-uploads":
                catalogue = hostile_uploads(cloud, data)
            elif name == "hostile-events":
                events = hostile_events(cloud)
            elif name == "burst":
                burst_ = burst(cloud, size.burst_uploads, size.burst_trains)
            elif name == "storm":
                storm_ = storm(cloud, data, size.storm_hours, size.storm_tick_minutes)
            else:
                counted.append(CRASHES[name](cloud, data, Inbox(cloud).read))
    scenarios = tuple(name for name in SCENARIOS if name in only)
    return figures(story, catalogue, events, burst_, storm_, counted, size, time.monotonic() - started, scenarios)


def scenario_names(text: str) -> tuple[str, ...]:
    """--only's comma-separated names, each one of SCENARIOS."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown scenario {', '.join(unknown) or text!r}; known: "
                                         + ", ".join(SCENARIOS))
    return names


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every promise held, 1 when one did not (the faults themselves are on purpose)."""
    parser = argparse.ArgumentParser(prog="python -m selfheal_bench.reliability", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full sizes (200 uploads, 48 hours of storm)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="writes <out>/reliability.json")
    parser.add_argument("--only", type=scenario_names, default=SCENARIOS, metavar="NAME[,NAME]",
                        help="run these scenarios alone: " + ", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    out = args.out.resolve()
    size = sizes(args.full or None)
    # Failed states and refused calls are on purpose here: what the libraries log about them goes to a file.
    with library_logs_to(out / "reliability" / "logs") as log:
        result = run_all(out / "reliability", size, echo=lambda line: print(line, flush=True), only=args.only)
    (out / "reliability.json").write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    print(f"\nwritten to {out / 'reliability.json'} ({result['seconds']} s, {size.name} sizes); "
          f"library logs in {log}")
    return 1 if result["problems"] else 0



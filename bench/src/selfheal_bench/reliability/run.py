"""Every scenario in one run, its figures and table: `python -m selfheal_bench.reliability [--full]`."""

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


def figures(story: Story, catalogue: Catalogue, events: list[InputOutcome], burst_: Burst, storm_: Storm,
            counted: list[Counted], size: Sizes, seconds: float) -> dict[str, Any]:
    faults = [{"scenario": f"story: {s.step.what}", "held": not s.problems(), **f.as_dict()}
              for s in story.steps for f in s.faults]
    faults += [{"scenario": f"story: {d.event} twice", "held": not d.problems(), **f.as_dict()}
               for d in story.duplicates for f in d.faults]
    faults += [{"scenario": c.name, "held": not c.problems(), **f.as_dict()} for c in counted for f in c.faults]
    inputs = [o.as_dict() for o in [*catalogue.outcomes, *events, *story.payloads]]
    traffic = [a for s in story.steps for a in s.answers or []] + [a for d in story.duplicates for a in d.answers]
    canary = sum(s.new_variant_invocations for s in story.steps if s.step.canary_errors)
    return {
        "size": size.name, "seconds": round(seconds, 1),
        "problems": story.problems() + catalogue.problems() + burst_.problems() + storm_.problems()
        + [f"{c.name}: {p}" for c in counted for p in c.problems()]
        + [f"{o.name}: {o.problem}" for o in events if o.problem],
        "faults": faults,
        "inputs": inputs,
        "traffic": {"requests": len(traffic), "answered": sum(a.status == 200 for a in traffic),
                    "server_errors": sum(a.status >= 500 for a in traffic),
                    "requests_to_failing_canaries": canary},
        "duplicates": [{"event": d.event, "deliveries": d.deliveries, "runs_started": d.started, "outcome": d.outcome}
                       for d in story.duplicates],
        "burst": burst_.summary(),
        "storm": storm_.summary(),
    }


def table(result: dict[str, Any]) -> str:
    faults, inputs, burst_, storm_ = result["faults"], result["inputs"], result["burst"], result["storm"]
    traffic = result["traffic"]
    rows = [
        ("faults injected", f"{len(faults)} (fired {sum(f['fired'] for f in faults)} times)"),
        ("faults survived as promised", f"{sum(f['held'] for f in faults)} of {len(faults)}"),
        ("hostile inputs tried", str(len(inputs))),
        ("rejected correctly", f"{sum(i['held'] for i in inputs)} of {len(inputs)}"),
        ("requests during the faults", f"{traffic['requests']}, {traffic['answered']} answered; "
                                       f"{traffic['server_errors']} server errors, all from a failing canary "
                                       f"before its alarm rolled it back ({traffic['requests_to_failing_canaries']} "
                                       "requests reached it)"),
        *[(f"duplicate {d['event']}", f"{d['deliveries']} deliveries, {d['runs_started']} run started")
          for d in result["duplicates"]],
        ("uploads in the burst", f"{burst_['deliveries']} ({burst_['redeliveries']} redelivered) across "
                                 f"{len(burst_['in_flight_max'])} models in {burst_['seconds']} s: "
                                 f"{burst_['datasets']} datasets, {burst_['quarantined']} quarantined"),
        ("uploads lost", str(burst_["lost"])),
        ("runs in flight per model, max", f"{max(burst_['in_flight_max'].values())} ({burst_['runs']} runs)"),
        ("retrains vs cap", f"{storm_['retrains']} in {storm_['simulated_hours']} h of drift reported every "
                            f"{storm_['tick_minutes']} min (cap {storm_['daily_cap']}/day, cooldown "
                            f"{storm_['cooldown_minutes']} min; held back by the cooldown "
                            f"{storm_['suppressed'].get('cooldown', 0)}, by the cap "
                            f"{storm_['suppressed'].get('daily_cap', 0)})"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", "problems:" if result["problems"] else "every promise held"]
    lines += [f"  - {p}" for p in result["problems"]]
    return "\n".join(lines)


def run_all(work: Path, size: Sizes, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Every scenario, each on a fresh local cloud under `work`."""
    started = time.monotonic()

    def cloud(name: str) -> LocalCloud:
        echo(f"{name} ...")
        return LocalCloud(work / name / "cloud")

    with cloud("story") as c:
        story = serving_story(c, work / "story" / "data", size)
    with cloud("hostile-uploads") as c:
        catalogue = hostile_uploads(c, work / "hostile-uploads" / "data")
    with cloud("hostile-events") as c:
        events = hostile_events(c)
    with cloud("burst") as c:
        burst_ = burst(c, size.burst_uploads, size.burst_trains)
    with cloud("storm") as c:
        storm_ = storm(c, work / "storm" / "data", size.storm_hours, size.storm_tick_minutes)
    counted = []
    for name, scenario in (("crash-ingest", crash_in_ingest), ("crash-pipeline", crash_in_pipeline),
                           ("throttle-pipeline", throttle_in_pipeline)):
        with cloud(name) as c:
            inbox = Inbox(c)
            counted.append(scenario(c, work / name / "data", inbox.read))
    return figures(story, catalogue, events, burst_, storm_, counted, size, time.monotonic() - started)




def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every promise held, 1 when one did not (the faults themselves are on purpose)."""
    parser = argparse.ArgumentParser(prog="python -m selfheal_bench.reliability", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full sizes (200 uploads, 48 hours of storm)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="writes <out>/reliability.json")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    size = sizes(args.full or None)
    # Failed states and refused calls are on purpose here: what the libraries log about them goes to a file.
    with library_logs_to(out / "reliability" / "logs") as log:
        result = run_all(out / "reliability", size, echo=lambda line: print(line, flush=True))
    (out / "reliability.json").write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    print(f"\nwritten to {out / 'reliability.json'} ({result['seconds']} s, {size.name} sizes); "
          f"library logs in {log}")
    return 1 if result["problems"] else 0



"""What selfheal survives, tried on the local cloud and measured: one module per scenario (serving_story,
hostile, burst, storm, crashes) over a small shared core; `run` runs them all (see core's docstring)."""

from .burst import BURST_MODELS, Burst, burst
from .core import MODEL, STORY_CONFIG, Inbox, Sizes, Traffic, request_rows, sizes
from .crashes import crash_in_ingest, crash_in_pipeline, throttle_in_pipeline
from .hostile import Catalogue, hostile_events, hostile_payloads, hostile_upload_catalogue, hostile_uploads
from .run import main, run_all
from .serving_story import FAILURES, SLOW_FAILURES, Story, serving_story
from .storm import STORM_MODEL, STORM_RETRAIN, Storm, storm

__all__ = ["BURST_MODELS", "FAILURES", "MODEL", "SLOW_FAILURES", "STORM_MODEL", "STORM_RETRAIN", "STORY_CONFIG",
           "Burst", "Catalogue", "Inbox", "Sizes", "Story", "Storm", "Traffic", "burst", "crash_in_ingest",
           "crash_in_pipeline", "hostile_events", "hostile_payloads", "hostile_upload_catalogue", "hostile_uploads",
           "main", "request_rows", "run_all", "serving_story", "sizes", "storm", "throttle_in_pipeline"]

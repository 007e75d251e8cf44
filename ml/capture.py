"""Endpoint data capture, read fast: capture files streamed a block at a time, each record's input payload
sliced out, and payloads parsed a chunk at a time into frames for the window's accumulator."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings ship beside this script
    sys.path.insert(0, str(HERE))

from accumulators import NUMERIC_NA, NUMERIC_NA_SET  # noqa: E402
from baseline import Baseline  # noqa: E402
from drift_checks import WindowAccumulator, parse_time  # noqa: E402

CHUNK_BYTES = 8 << 20  # capture payload characters parsed at once (about 50,000 rows of 20 features)
READ_BLOCK_BYTES = 1 << 20
PARALLEL_MIN_BYTES = 8 << 20  # below this, worker processes cost more than they save

# ------------------------------------------------------------------------------------------- data capture

_RAW_DECODE = json.JSONDecoder().raw_decode
_SCAN_STRING = json.decoder.scanstring  # type: ignore[attr-defined]  # the C string scanner json uses
_INPUT_KEY, _DATA_KEY, _TIME_KEY = '"endpointInput"', '"data"', '"inferenceTime"'
MAX_LAYOUTS = 64
CSV, JSON, JSON_LINES = "csv", "json", "jsonlines"


class _RecordReader:
    """Reads (data, content type, encoding, inferenceTime) from capture lines: the job's hot path.

    Decoding whole lines costs more than the rest of the analysis. So the reader decodes only the
    endpointInput's data string, and reads the content type and encoding beside it once per distinct
    layout of that object (its text around the data), which is the same on every line an endpoint writes.
    A quoted key cannot occur inside a JSON string (its quotes would be escaped), so searching for keys
    finds keys. Any line the fast path does not fit is decoded in full.
    """

    def __init__(self) -> None:
        self.layouts: dict[tuple[str, str], tuple[Any, Any]] = {}

    def read(self, line: str) -> tuple[str, Any, Any, str | None]:
        try:
            data, content_type, encoding = self._input(line)
        except ValueError:
            data, content_type, encoding = _decoded_input(line)
        at = line.find(_TIME_KEY)
        if at < 0:
            return data, content_type, encoding, None
        quote = line.index('"', line.index(":", at + len(_TIME_KEY)) + 1)
        return data, content_type, encoding, line[quote + 1 : line.index('"', quote + 1)]  # ISO: no escapes

    def _input(self, line: str) -> tuple[str, Any, Any]:
        brace = line.index("{", line.index(_INPUT_KEY) + len(_INPUT_KEY))
        key = line.index(_DATA_KEY, brace)
        at = line.index(":", key + len(_DATA_KEY)) + 1
        while line[at] in " \t":
            at += 1
        if line[at] != '"':
            raise ValueError("data is not a string")
        data, after = _SCAN_STRING(line, at + 1)
        return (data, *self.fields(line[brace:key], line[after : line.index("}", after) + 1]))

    def block_layout(self, line: str) -> tuple[str, str, str, Any, Any]:
        """How records laid out as `line` is can be cut apart with bytes.split and counted: (the text from
        "endpointInput" to its data; the text after its data, long enough to occur once in a record; the text
        from "inferenceTime" to its value; the content type and encoding of the layout)."""
        start = line.index(_INPUT_KEY)
        brace = line.index("{", start + len(_INPUT_KEY))
        key = line.index(_DATA_KEY, brace)
        at = line.index('"', line.index(":", key + len(_DATA_KEY)) + 1)
        after = _SCAN_STRING(line, at + 1)[1]
        close = line.index("}", after) + 1
        tail = close
        while line.count(line[after - 1:tail]) > 1 and tail < len(line):
            tail += 1  # endpointOutput may end as endpointInput does: take what follows too
        time = line.index(_TIME_KEY)
        time_value = line.index('"', line.index(":", time + len(_TIME_KEY)) + 1) + 1
        return (line[start:at + 1], line[after - 1:tail], line[time:time_value],
                *self.fields(line[brace:key], line[after:close]))

    def fields(self, before: str, after: str) -> tuple[Any, Any]:
        """(observedContentType, encoding) of an endpointInput object, from its text around the data."""
        fields = self.layouts.get((before, after))
        if fields is None:
            if "}" in before:  # the "data" found is not endpointInput's
                raise ValueError("endpointInput has no data")
            others = json.loads(before + '"data":""' + after)
            fields = others.get("observedContentType"), others.get("encoding")
            if len(self.layouts) < MAX_LAYOUTS:
                self.layouts[(before, after)] = fields
        return fields


def _decoded_input(line: str) -> tuple[str, Any, Any]:
    at = line.index(":", line.index(_INPUT_KEY) + len(_INPUT_KEY)) + 1
    while line[at] in " \t":
        at += 1
    endpoint_input = _RAW_DECODE(line, at)[0]
    data = endpoint_input["data"]
    if not isinstance(data, str):
        raise ValueError("data is not a string")
    return data, endpoint_input.get("observedContentType"), endpoint_input.get("encoding")


def _json_rows(document: Any) -> list[list[Any] | dict[str, Any]]:
    """Rows of a JSON request: {"instances": [...]}, a list of rows, or one row (a list or an object)."""
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    if isinstance(document, dict) or (
        isinstance(document, list) and document and not isinstance(document[0], (list, dict))
    ):
        document = [document]
    if not isinstance(document, list):
        raise ValueError(f"unsupported JSON payload: {type(document).__name__}")
    rows = []
    for row in document:
        if isinstance(row, dict) and list(row) == ["features"]:  # SageMaker's {"features": [...]} instance
            row = row["features"]
        if not isinstance(row, (list, dict)):
            raise ValueError(f"unsupported JSON row: {type(row).__name__}")
        rows.append(row)
    return rows


def _positional(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Columns named by position in the baseline's order; columns past it as Spark names them (_c<i>)."""
    frame.columns = [names[i] if i < len(names) else f"_c{i}" for i in range(frame.shape[1])]
    return frame


def _occurrences(data: bytes, byte: bytes) -> int:
    """How often one byte occurs: numpy's vectorised comparison counts 4-7x faster than bytes.count, which
    walks the bytes one at a time (it counted the newlines of every capture block: 6% of the job)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == byte[0]))


def _csv_width(raw: bytes) -> int:
    """The most fields on any line, counting commas with numpy (valid when no field is quoted)."""
    text = np.frombuffer(raw, dtype=np.uint8)
    line_ends = np.append(np.flatnonzero(text == ord("\n")), len(text))
    commas = np.flatnonzero(text == ord(","))
    return int(np.diff(np.searchsorted(commas, line_ends), prepend=0).max()) + 1


def _quoted_csv_rows(text: str, numeric: list[bool]) -> list[list[Any]]:
    """Rows of one CSV payload with quoted fields; strict, so a malformed payload is an invalid record."""
    rows = [row for row in csv.reader(io.StringIO(text), strict=True) if row]
    return [
        [
            None if value in (NUMERIC_NA_SET if i < len(numeric) and numeric[i] else ("",)) else value
            for i, value in enumerate(row)
        ]
        for row in rows
    ]


def _csv_frame(raw: bytes, baseline: Baseline) -> pd.DataFrame:
    """One read_csv call for a chunk of CSV payloads without quotes (no header, in the baseline's order).
    The chunk is read as the baseline's width when one line has that width (its first, or as its commas add up:
    counted only then, since two passes over the chunk cost 5% of the job) and none is wider (pandas refuses a
    wider line), and as wide as its widest line otherwise."""
    expected = len(baseline.features)
    first = raw[:raw.index(b"\n")] if b"\n" in raw else raw
    if first.count(b",") == expected - 1 or \
            _occurrences(raw, b",") == (expected - 1) * (_occurrences(raw, b"\n") + 1):
        try:
            return _read_csv(raw, baseline, expected)
        except pd.errors.ParserError:  # some line longer, another shorter: count them
            pass
    return _read_csv(raw, baseline, _csv_width(raw))


def _read_csv(raw: bytes, baseline: Baseline, width: int) -> pd.DataFrame:
    numeric = [i < len(baseline.features) and baseline.features[i].numeric for i in range(width)]
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            header=None,
            names=list(range(width)),
            keep_default_na=False,
            dtype={i: object for i in range(width) if not numeric[i]},  # Python str, whatever pandas' default
            na_values={i: NUMERIC_NA if numeric[i] else [""] for i in range(width)},
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    return _positional(frame, baseline.names)


def _declared_kind(content_type: Any, encoding: Any) -> tuple[str | None, bool]:
    """(CSV, JSON, JSON_LINES, or None when the content type does not say; whether base64-encoded)."""
    content_type = str(content_type or "").lower()
    base64_encoded = str(encoding or "").upper() == "BASE64"
    for kind in (JSON_LINES, JSON, CSV):
        if kind in content_type:
            return kind, base64_encoded
    return None, base64_encoded


class _Batch:
    """Payloads of capture records waiting to be parsed together: one read_csv call per chunk."""

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self.csv: list[bytes] = []  # CSV payloads, UTF-8
        self.list_rows: list[list[Any]] = []
        self.dict_rows: list[dict[str, Any]] = []
        self.size = 0  # payload characters held: the flush trigger, which bounds memory
        self.numeric = [feature.numeric for feature in baseline.features]
        self._kinds: dict[tuple[Any, Any], tuple[str | None, bool]] = {}

    def add(self, data: str, content_type: Any, encoding: Any) -> None:
        key = (content_type, encoding)
        declared = self._kinds.get(key)
        if declared is None:
            declared = self._kinds[key] = _declared_kind(content_type, encoding)
        kind, base64_encoded = declared
        if base64_encoded:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        if kind is None:  # no content type: sniff
            kind = JSON if data.lstrip()[:1] in ("[", "{") else CSV
        if kind == CSV and '"' in data:  # rare: parsed alone, so that a stray quote spoils only its record
            self.list_rows += _quoted_csv_rows(data, self.numeric)
        elif kind == CSV:
            self.csv.append(data.encode("utf-8"))
        else:
            self._add_json(data, jsonlines=kind == JSON_LINES)
        self.size += len(data)

    def _add_json(self, payload: str, jsonlines: bool) -> None:
        lines = [line for line in payload.splitlines() if line.strip()] if jsonlines else [payload]
        rows = [row for line in lines for row in _json_rows(json.loads(line))]
        self.list_rows += [row for row in rows if isinstance(row, list)]
        self.dict_rows += [row for row in rows if isinstance(row, dict)]

    def frames(self) -> Iterator[pd.DataFrame]:
        if self.csv:
            yield _csv_frame(b"\n".join(self.csv), self.baseline)
        if self.list_rows:
            width = max(len(row) for row in self.list_rows)
            padded = [row + [None] * (width - len(row)) for row in self.list_rows]
            yield _positional(pd.DataFrame(padded), self.baseline.names)
        if self.dict_rows:
            yield pd.DataFrame(self.dict_rows)


def _owned_blocks(path: str, start: int, end: int) -> Iterator[bytes]:
    """Blocks of the lines that begin in [start, end): a file split in ranges has each line read once."""
    with open(path, "rb") as handle:
        if start:
            handle.seek(start - 1)
            handle.readline()  # the line straddling `start` belongs to the range before
        position = handle.tell()
        while position < end:
            block = handle.read(min(READ_BLOCK_BYTES, end - position))
            if not block:
                return
            if not block.endswith(b"\n"):
                block += handle.readline()  # finish the last line, which begins before `end`
            position += len(block)
            yield block


@dataclass
class ScanTask:
    pieces: list[tuple[str, int, int]]  # (path, first byte, end byte)
    baseline: Baseline
    start: datetime | None
    end: datetime | None

    def outside(self, moment: datetime | None) -> bool:
        if moment is None:
            return self.start is not None or self.end is not None
        return (self.start is not None and moment < self.start) or (self.end is not None and moment >= self.end)


def scan(task: ScanTask) -> WindowAccumulator:
    """Stream capture records into a fresh accumulator, parsing payloads a chunk (CHUNK_BYTES) at a time.

    Reading records is the job's hot path. An endpoint writes every record in one layout, so a block is
    read by the layout of its first line: the endpointInput's data and inferenceTime of every line are found
    from the positions of the block's quotes (_block_spans). When every line fits, the block's CSV payloads join
    the chunk as one string; otherwise (another layout, escaped data, a broken line) it is read a line at a time.
    """
    acc, reader = WindowAccumulator(task.baseline), _RecordReader()
    batch = _Batch(task.baseline)
    stamps = _Stamps(task, acc)
    for path, first, end in task.pieces:
        for block in _owned_blocks(path, first, end):
            if not _add_block(acc, batch, reader, stamps, block):
                lines = block.decode("utf-8", errors="replace").split("\n")  # a corrupt byte spoils one record
                _add_lines(acc, batch, reader, stamps, [line for line in lines if line])
            if batch.size >= CHUNK_BYTES:
                _flush(acc, batch)
                batch = _Batch(task.baseline)
    _flush(acc, batch)
    return acc


class _Stamps:
    """Whether each inferenceTime is inside the window; each distinct one parsed once."""

    def __init__(self, task: ScanTask, acc: WindowAccumulator) -> None:
        self.task, self.acc = task, acc
        self.seen: dict[str, bool] = {}

    def inside(self, stamp: str | None) -> bool:
        verdict = self.seen.get(stamp or "")
        if verdict is None:
            moment = parse_time(stamp) if stamp else None
            verdict = not self.task.outside(moment)
            if verdict and moment is not None:
                self.acc.note_event(moment)
            if len(self.seen) > 100_000:  # records span hours at most: only a long window fills this
                self.seen.clear()
            self.seen[stamp or ""] = verdict
        return verdict


def _add_block(acc: WindowAccumulator, batch: _Batch, reader: _RecordReader, stamps: _Stamps,
               block: bytes) -> bool:
    """Add a block of CSV records in one layout in one piece, never decoding it; False (nothing added) for
    any other block."""
    try:
        first = block[:block.index(b"\n")] if b"\n" in block else block
        before, after, time_key, content_type, encoding = reader.block_layout(first.decode("utf-8"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False
    kind, base64_encoded = _declared_kind(content_type, encoding)
    if kind != CSV or base64_encoded:
        return False
    text = np.frombuffer(block, dtype=np.uint8)
    spans = _block_spans(text, first, *(part.encode("utf-8") for part in (before, after, time_key)))
    if spans is None:  # a blank or broken line, one in another layout
        return False
    data, stamp = spans
    moments, which = _distinct(text, stamp)
    kept = np.array([stamps.inside(moment.decode()) for moment in moments], dtype=bool)[which]
    joined = b"\n".join([block[a + 1:b] for a, b in zip(*data[:, kept].tolist())])  # noqa: B905
    if b"\\" in joined:  # escaped characters (a newline in a multi-row payload): a line at a time
        return False
    acc.skipped_records += len(kept) - int(np.count_nonzero(kept))
    batch.csv.append(joined)
    batch.size += len(joined)
    acc.records += int(np.count_nonzero(kept))
    return True


def _block_spans(text: np.ndarray, first: bytes, before: bytes, after: bytes,
                 time_key: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each record's data and inferenceTime are, as rows of (opening quote, closing quote) positions, when
    every line of the block is laid out as its first line; None otherwise.

    Found from the positions of the block's quotes (one vectorised pass) rather than by two regular expressions
    (27% of the job; this takes a fifth less CPU, joining included): a line's data opens at the same count of
    quotes from the line's start as on the first line, and its inferenceTime closes at the same count from the
    line's end (endpointOutput's escaped JSON between them may vary). The text around each must then be the
    layout's, byte for byte.
    """
    quotes = np.flatnonzero(text == ord('"'))
    ends = np.flatnonzero(text == ord("\n"))
    if not len(ends) or ends[-1] != len(text) - 1:
        ends = np.append(ends, len(text))
    starts = np.concatenate(([0], ends[:-1] + 1))
    data_open = first.index(before) + len(before) - 1
    time_open = first.index(time_key) + len(time_key) - 1
    data_at = np.searchsorted(quotes, starts) + first[:data_open].count(b'"')
    time_at = np.searchsorted(quotes, ends) - first[time_open + 1:].count(b'"') - 1
    if not (data_at + 1 < time_at).all():  # too few quotes on some line (a blank or broken one), another key order
        return None
    data, stamp = quotes[np.stack((data_at, data_at + 1))], quotes[np.stack((time_at, time_at + 1))]
    if not (_matches(text, data[0] - len(before) + 1, before) and _matches(text, data[1], after)
            and _matches(text, stamp[0] - len(time_key) + 1, time_key)):
        return None
    return data, stamp


def _matches(text: np.ndarray, at: np.ndarray, expected: bytes) -> bool:
    """Whether `expected` occurs at every position of `at` (ascending)."""
    if not len(at):
        return True
    if at[0] < 0 or at[-1] + len(expected) > len(text):
        return False
    windows = np.lib.stride_tricks.sliding_window_view(text, len(expected))  # a view: copies only the rows taken
    return bool((windows[at] == np.frombuffer(expected, dtype=np.uint8)).all())


def _distinct(text: np.ndarray, spans: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """The distinct texts between the quotes of `spans`, and which of them each span holds."""
    lengths = spans[1] - spans[0] - 1
    if len(lengths) and lengths[0] > 0 and (lengths == lengths[0]).all():  # inferenceTime: one format, one width
        values = np.lib.stride_tricks.sliding_window_view(text, lengths[0])[spans[0] + 1]
        if (values == values[0]).all():  # a capture file holds a minute or so: mostly one value
            return [values[0].tobytes()], np.zeros(len(lengths), dtype=np.intp)
        distinct, which = np.unique(values.view(f"S{lengths[0]}").ravel(), return_inverse=True)
        return distinct.tolist(), which.ravel()
    found = [text[a + 1:b].tobytes() for a, b in zip(*spans.tolist())]  # noqa: B905
    distinct = sorted(set(found))
    position = {value: i for i, value in enumerate(distinct)}
    return distinct, np.array([position[value] for value in found], dtype=np.intp)


def _add_lines(acc: WindowAccumulator, batch: _Batch, reader: _RecordReader, stamps: _Stamps,
               lines: list[str]) -> None:
    for line in lines:
        if line.isspace():
            continue
        try:
            data, content_type, encoding, stamp = reader.read(line)
            if not stamps.inside(stamp):
                acc.skipped_records += 1
                continue
            batch.add(data, content_type, encoding)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, csv.Error):
            acc.invalid_records += 1
            continue
        acc.records += 1


def _flush(acc: WindowAccumulator, batch: _Batch) -> None:
    for frame in batch.frames():
        acc.update(frame)


def plan(paths: list[Path], workers: int) -> list[list[tuple[str, int, int]]]:
    """Split the capture files into about 4 byte ranges per worker, small files grouped together."""
    sizes = [(str(path), path.stat().st_size) for path in paths]
    total = sum(size for _, size in sizes)
    if workers <= 1 or total < PARALLEL_MIN_BYTES:
        return [[(path, 0, size) for path, size in sizes]]
    target = math.ceil(total / (workers * 4))
    tasks: list[list[tuple[str, int, int]]] = [[]]
    filled = 0
    for path, size in sizes:
        for begin in range(0, size, target):
            tasks[-1].append((path, begin, min(size, begin + target)))
            filled += min(size, begin + target) - begin
            if filled >= target:
                tasks.append([])
                filled = 0
    return [task for task in tasks if task] or [[]]



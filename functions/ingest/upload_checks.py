"""Checks an upload must pass before it becomes a dataset. Pure: no AWS here; bytes come in as an
iterable of chunks (CSV) or through a ranged-read callable (Parquet). Every failure raises
UploadRejected(check, reason) with one of the CHECKS, nothing else."""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from parquet_footer import MAGIC, FooterError, footer_length, read_footer
from selfheal_shared.config import ModelConfig
from selfheal_shared.errors import UploadRejected
from selfheal_shared.names import MODEL_NAME

# "model" (no configuration) and "config" (an invalid one) are raised by ingest.py.
CHECKS = frozenset({"key", "model", "config", "format", "size", "empty", "encoding", "line_length", "csv",
                    "delimiter", "header", "formula", "ragged", "rows", "target", "classes", "parquet"})
INCOMING = "incoming/"
MAX_KEY_BYTES = 512  # S3 allows 1024; ours must also fit under datasets/ and quarantine/ prefixes
MAX_FILE_NAME = 200
MAX_LINE_CHARS = 1024 * 1024
MAX_COLUMNS = 10_000
MAX_COLUMN_NAME = 1024
MAX_FOOTER_BYTES = 16 * 1024 * 1024
# Extension -> (format, compression). Gzip is read as a stream: a .csv.gz is checked like its CSV.
EXTENSIONS = {".csv": ("csv", None), ".csv.gz": ("csv", "gzip"), ".parquet": ("parquet", None),
              ".pq": ("parquet", None)}
GUNZIP_PIECE = 1024 * 1024  # decompressed bytes per step: a gzip bomb never expands at once
# Letters and digits of any script, and a few separators; no path or control characters.
_FILE_NAME = re.compile(r"[^\W_][\w .()+=,@-]*")
# Cells a spreadsheet would run as a formula (OWASP "CSV injection").
_FORMULA_START = frozenset("=+-@\t\r")
_NEWLINE = re.compile(r"\r\n?|\n")
# What pandas reads as missing by default: Preprocess sees these cells as empty too.
MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                     "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
_OTHER_FORMATS = {b"PAR1": "Parquet", b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"%PDF": "PDF",
                  b"\xd0\xcf\x11\xe0": "an old Excel/Office file"}


@dataclass(frozen=True)
class UploadKey:
    model: str
    file: str
    format: str
    compression: str | None = None


@dataclass(frozen=True)
class TableSummary:
    rows: int
    columns: int


def ignore_reason(bucket: str, key: str, data_bucket: str) -> str | None:
    """Why an event is not an upload for ingest to judge (None when it is one)."""
    if bucket != data_bucket:
        return f"object in bucket {bucket!r}, not the data bucket"
    if not key.startswith(INCOMING):
        return "key outside incoming/"
    if key.endswith("/"):
        return "folder marker, not a file"  # what the console's "Create folder" makes
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_upload_key(key: str) -> UploadKey:
    """incoming/<model>/<file> with a safe model name and file name, and a known extension."""
    if not _is_utf8(key):
        raise UploadRejected("key", "key is not valid Unicode")
    if not key.startswith(INCOMING):
        raise UploadRejected("key", "key outside incoming/")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise UploadRejected("key", f"key is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key):
        raise UploadRejected("key", "key contains control characters")
    if ".." in key:
        raise UploadRejected("key", "key contains '..'")
    parts = key[len(INCOMING):].split("/")
    if len(parts) != 2:
        raise UploadRejected("key", "expected incoming/<model>/<file>; sub-folders are not supported")
    model, file = parts
    if not MODEL_NAME.fullmatch(model):
        raise UploadRejected("key", f"model folder {model!r} is not a model name: use 1-54 letters, "
                                    "digits and inner hyphens")
    if len(file) > MAX_FILE_NAME or not _FILE_NAME.fullmatch(file):
        raise UploadRejected("key", f"file name {file!r} is not allowed: start with a letter or digit; use "
                                    f"letters, digits, spaces and ._()+=,@- (at most {MAX_FILE_NAME})")
    extension = next((ext for ext in EXTENSIONS if file.lower().endswith(ext)), None)
    if extension is None:
        last = "." + file.rpartition(".")[2].lower() if "." in file else "(none)"
        raise UploadRejected("format", f"extension {last!r} is not .csv, .csv.gz or .parquet")
    fmt, compression = EXTENSIONS[extension]
    return UploadKey(model=model, file=file, format=fmt, compression=compression)


def quarantine_names(key: str) -> tuple[str, str]:
    """(model folder, file name) to file a rejected upload under, safe even when its key is not."""
    parts = key[len(INCOMING):].split("/") if key.startswith(INCOMING) else []
    model = parts[0] if len(parts) >= 2 and MODEL_NAME.fullmatch(parts[0]) else "_invalid"
    file = parts[-1] if parts else ""
    if ".." in file or len(file) > MAX_FILE_NAME or not _FILE_NAME.fullmatch(file):
        file = "upload-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return model, file


def check_format_allowed(upload: UploadKey, config: ModelConfig) -> None:
    if upload.format not in config.validation.allowed_formats:
        raise UploadRejected("format", f"{upload.format} uploads are not allowed for model {upload.model} "
                                       f"(validation.allowed_formats: {', '.join(config.validation.allowed_formats)})")


def check_size(size: int, limit: int) -> None:
    if size == 0:
        raise UploadRejected("empty", "the file is empty")
    if size > limit:
        raise UploadRejected("size", f"{size} bytes is over the limit of {limit} bytes")


# CSV


def gunzip(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Decompress a gzip stream (several members too) in bounded pieces; refuse one that expands
    past `limit` bytes, as an uncompressed upload over the limit is refused."""
    decompressor, in_member, total = zlib.decompressobj(16 + zlib.MAX_WBITS), False, 0
    try:
        for chunk in chunks:
            pending = chunk
            while pending:
                in_member = True
                piece = decompressor.decompress(pending, GUNZIP_PIECE)
                pending = decompressor.unconsumed_tail
                if decompressor.eof:  # the end of a member: another may follow
                    pending, in_member = decompressor.unused_data, False
                    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                total += len(piece)
                if total > limit:
                    raise UploadRejected("size", f"decompressed, the file is over the limit of {limit} bytes")
                if piece:
                    yield piece
    except zlib.error as error:
        raise UploadRejected("format", f"not a valid gzip file: {error}") from None
    if in_member:
        raise UploadRejected("format", "not a valid gzip file: the stream ends early")


def check_csv(chunks: Iterable[bytes], config: ModelConfig) -> TableSummary:
    """Stream the file once, in bounded memory: UTF-8, header, ragged rows, formula cells, target."""
    reader = csv.reader(_lines(_decode(chunks)), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise UploadRejected("empty", "the file has no lines")
        target = _check_header(header, config)
        return _check_rows(reader, header, target, config)
    except csv.Error as error:
        raise UploadRejected("csv", f"line {reader.line_num}: {error}") from None


def _decode(chunks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    offset = 0
    for index, chunk in enumerate(chunks):
        if index == 0:
            for magic, name in _OTHER_FORMATS.items():
                if chunk.startswith(magic):
                    hint = ": name it .csv.gz" if name == "gzip" else ""
                    raise UploadRejected("format", f"the file looks like {name}, not CSV text{hint}")
        if b"\x00" in chunk:
            raise UploadRejected("encoding", f"binary data: NUL byte at offset {offset + chunk.index(0)}")
        try:
            yield decoder.decode(chunk)
        except UnicodeDecodeError as error:
            raise UploadRejected("encoding", f"not UTF-8 text: invalid byte at offset {offset + error.start}") \
                from None
        offset += len(chunk)
    try:
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UploadRejected("encoding", "not UTF-8 text: the file ends inside a character") from None


def _lines(texts: Iterable[str]) -> Iterator[str]:
    """Split into lines (\\n, \\r\\n or \\r), refusing any longer than MAX_LINE_CHARS before
    buffering it whole: a single 100 MB line never reaches memory."""
    pending = ""
    for text in texts:
        pending += text
        start = 0
        for newline in _NEWLINE.finditer(pending):
            if newline.group() == "\r" and newline.end() == len(pending):
                break  # may be the first half of a \r\n split across chunks
            yield pending[start : newline.end()]
            start = newline.end()
        pending = pending[start:]
        if len(pending) > MAX_LINE_CHARS:
            raise UploadRejected("line_length", f"a line is longer than {MAX_LINE_CHARS} characters")
    if pending:
        yield pending


def _check_header(header: list[str], config: ModelConfig) -> int:
    """Header checks shared by CSV and Parquet; returns the target's column index."""
    if len(header) == 1:
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in header[0]:
                raise UploadRejected("delimiter", f"the header is one column separated by {name}: "
                                                  "CSV files must be comma-separated")
    if len(header) > MAX_COLUMNS:
        raise UploadRejected("header", f"{len(header)} columns; at most {MAX_COLUMNS}")
    for position, name in enumerate(header, start=1):
        if not name.strip():
            raise UploadRejected("header", f"column {position} has no name")
        if len(name) > MAX_COLUMN_NAME:
            raise UploadRejected("header", f"column {position}'s name is longer than {MAX_COLUMN_NAME} characters")
        _check_cell(name, f"header, column {position}")
    duplicates = sorted(name for name, seen in Counter(header).items() if seen > 1)
    if duplicates:
        raise UploadRejected("header", f"duplicate column names: {', '.join(map(repr, duplicates[:10]))}")
    if config.target not in header:
        raise UploadRejected("header", f"the target column {config.target!r} is not in the header"
                                       + _near_miss(header, config.target))
    if len(header) < 2:
        raise UploadRejected("header", "no feature columns besides the target")
    return header.index(config.target)


def _near_miss(header: list[str], target: str) -> str:
    """A hint when the header holds the target's name but for stray spaces or letter case."""
    for name in header:
        if name.strip() == target:
            return f" (it has {name!r}: remove the spaces around the name)"
        if name.strip().casefold() == target.casefold():
            return f" (it has {name!r}: column names are case-sensitive)"
    return ""


def _check_cell(cell: str, where: str) -> None:
    if len(cell) > 1 and cell[0] in _FORMULA_START and not _is_number(cell):
        raise UploadRejected("formula", f"{where}: a cell starts with {cell[0]!r} and is not a number "
                                        "(spreadsheet formula injection)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_rows(rows: Iterable[list[str]], header: list[str], target: int, config: ModelConfig) -> TableSummary:
    width, count, labelled = len(header), 0, 0
    classes: set[str] = set()
    for row in rows:
        if not row:
            continue  # blank line
        count += 1
        if len(row) != width:
            raise UploadRejected("ragged", f"data row {count} has {len(row)} fields; the header has {width}")
        for position, cell in enumerate(row):
            if cell and cell[0] in _FORMULA_START:
                _check_cell(cell, f"data row {count}, column {header[position]!r}")
        label = row[target].strip()
        if label in MISSING:
            continue
        labelled += 1
        if config.is_classification:
            if len(classes) < 3:
                classes.add(label)
        elif not _is_number(label):
            raise UploadRejected("target", f"data row {count}: target {label[:40]!r} is not a number "
                                           "(regression)")
    _check_counts(count, config)
    if labelled == 0:
        raise UploadRejected("target", f"the target column {config.target!r} is empty in every row")
    _check_classes(len(classes), config)
    return TableSummary(rows=count, columns=width)


def _check_counts(rows: int, config: ModelConfig) -> None:
    if rows == 0:
        raise UploadRejected("rows", "no data rows (header only)")
    if rows < config.validation.min_rows:
        raise UploadRejected("rows", f"{rows} data rows; at least {config.validation.min_rows} "
                                     "(validation.min_rows)")


def _check_classes(classes: int, config: ModelConfig) -> None:
    if config.is_classification and classes < 2:
        raise UploadRejected("classes", f"the target has a single class; a {config.problem} model needs two or more")
    if config.problem == "binary" and classes > 2:
        raise UploadRejected("classes", "the target has more than two classes; the problem is binary")


# Parquet


def check_parquet(read_range: Callable[[int, int], bytes], size: int, config: ModelConfig) -> TableSummary:
    """Magic at both ends and the footer (ranged reads only). Row count, columns and the target's
    statistics come from the footer; cell values are left to Preprocess, which reads them all."""
    if size < 12:
        raise UploadRejected("parquet", f"{size} bytes is too small for a Parquet file")
    if read_range(0, 4) != MAGIC:
        raise UploadRejected("format", "the file does not start with the Parquet magic PAR1")
    try:
        length = footer_length(read_range(size - 8, 8))
        if length > min(size - 12, MAX_FOOTER_BYTES):
            raise FooterError(f"footer length {length} does not fit the file")
        summary = read_footer(read_range(size - 8 - length, length), stats_for=config.target)
    except FooterError as error:
        raise UploadRejected("parquet", f"not a valid Parquet file: {error}") from None
    _check_header(summary.columns, config)
    _check_counts(summary.rows, config)
    stats = summary.stats.get(config.target)
    if stats is not None and stats.null_count == summary.rows:
        raise UploadRejected("target", f"the target column {config.target!r} is empty in every row")
    if stats is not None and stats.single_value:
        _check_classes(1, config)
    return TableSummary(rows=summary.rows, columns=len(summary.columns))

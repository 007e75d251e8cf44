"""Read a Parquet file's footer (FileMetaData) without pyarrow, which Lambda does not have.

A Parquet file is `PAR1 <data> <FileMetaData> <4-byte little-endian length> PAR1`; FileMetaData is
a Thrift struct in the compact protocol. This reader decodes any compact struct generically (field
id -> value), then picks what ingest checks: the row count, the top-level column names, and the
null counts and min/max statistics of one column. Data pages (compressed) are never read.

It is strict and bounded: every length is checked against the bytes left, nesting is capped, and
any inconsistency raises FooterError, so a hostile footer cannot make it loop or allocate much."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"PAR1"
MAX_DEPTH = 24

# Compact protocol type ids.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
# Parquet physical types whose statistics compare exactly (no truncation as with byte arrays).
_NUMERIC_PHYSICAL_TYPES = frozenset({0, 1, 2, 3, 4, 5})  # BOOLEAN, INT32, INT64, INT96, FLOAT, DOUBLE


class FooterError(ValueError):
    """Not a well-formed Parquet footer."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise FooterError("footer ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        result = shift = 0
        for _ in range(10):
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
        raise FooterError("varint longer than 10 bytes")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def value(self, kind: int, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise FooterError("footer nested too deeply")
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            return struct.unpack("b", self.take(1))[0]
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            return struct.unpack("<d", self.take(8))[0]
        if kind == _BINARY:
            return self.take(self.varint())
        if kind in (_LIST, _SET):
            return self.collection(depth)
        if kind == _MAP:
            return self.mapping(depth)
        if kind == _STRUCT:
            return self.struct(depth)
        raise FooterError(f"unknown compact type {kind}")

    def collection(self, depth: int) -> list[Any]:
        header = self.byte()
        size, kind = header >> 4, header & 0x0F
        if size == 15:
            size = self.varint()
        if size > len(self.data) - self.pos:  # every element takes at least one byte
            raise FooterError("list longer than the footer")
        if kind in (_TRUE, _FALSE):  # booleans in collections take one byte each
            return [self.byte() == _TRUE for _ in range(size)]
        return [self.value(kind, depth + 1) for _ in range(size)]

    def mapping(self, depth: int) -> dict[Any, Any]:
        size = self.varint()
        if size == 0:
            return {}
        if 2 * size > len(self.data) - self.pos:
            raise FooterError("map longer than the footer")
        kinds = self.byte()
        items = {}
        for _ in range(size):
            key = self.value(kinds >> 4, depth + 1)
            items[key if not isinstance(key, list | dict) else repr(key)] = self.value(kinds & 0x0F, depth + 1)
        return items

    def struct(self, depth: int) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            header = self.byte()
            kind = header & 0x0F
            if kind == _STOP:
                return fields
            delta = header >> 4
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind, depth + 1)


@dataclass(frozen=True)
class ColumnStats:
    """Statistics of one column over all row groups; None where a writer left them out."""

    null_count: int | None
    single_value: bool  # every non-null value is the same (exact numeric statistics only)


@dataclass(frozen=True)
class FooterSummary:
    rows: int
    columns: list[str]
    stats: dict[str, ColumnStats] = field(default_factory=dict)


def footer_length(tail: bytes) -> int:
    """Length of FileMetaData from the file's last 8 bytes."""
    if len(tail) != 8 or tail[4:] != MAGIC:
        raise FooterError("the file does not end with the Parquet magic PAR1")
    return struct.unpack("<I", tail[:4])[0]


def read_footer(footer: bytes, stats_for: str | None = None) -> FooterSummary:
    """Decode FileMetaData; `stats_for` names a top-level column whose statistics to gather."""
    reader = _Reader(footer)
    meta = reader.struct(0)
    schema, rows, row_groups = meta.get(2), meta.get(3), meta.get(4, [])
    if not isinstance(schema, list) or not schema or not isinstance(rows, int) or rows < 0:
        raise FooterError("FileMetaData lacks its schema or row count")
    if not isinstance(row_groups, list):
        raise FooterError("FileMetaData row groups are not a list")
    columns = _top_level_names(schema)
    stats = {stats_for: _column_stats(row_groups, stats_for)} if stats_for in columns else {}
    return FooterSummary(rows=rows, columns=columns, stats=stats)


def _name(element: Any) -> str:
    if not isinstance(element, dict) or not isinstance(element.get(4), bytes):
        raise FooterError("schema element without a name")
    try:
        return element[4].decode("utf-8")
    except UnicodeDecodeError:
        raise FooterError("schema element name is not UTF-8") from None


def _children(element: dict[int, Any]) -> int:
    count = element.get(5, 0)
    if not isinstance(count, int) or count < 0:
        raise FooterError("schema element with a bad child count")
    return count


def _top_level_names(schema: list[Any]) -> list[str]:
    """The schema is a depth-first flattened tree; the root's children are the columns."""
    _name(schema[0])
    names, index = [], 1
    for _ in range(_children(schema[0])):
        if index >= len(schema):
            raise FooterError("schema shorter than its child counts")
        names.append(_name(schema[index]))
        remaining = _children(schema[index])
        index += 1
        while remaining:  # skip the subtree of a nested column
            if index >= len(schema):
                raise FooterError("schema shorter than its child counts")
            remaining += _children(schema[index]) - 1
            index += 1
    if index != len(schema):
        raise FooterError("schema longer than its child counts")
    return names


def _column_stats(row_groups: list[Any], column: str) -> ColumnStats:
    null_count: int | None = 0
    values: set[bytes] = set()
    exact = True
    for group in row_groups:
        chunks = group.get(1, []) if isinstance(group, dict) else None
        if not isinstance(chunks, list):
            raise FooterError("row group without columns")
        for chunk in chunks:
            meta = chunk.get(3) if isinstance(chunk, dict) else None
            if not isinstance(meta, dict) or meta.get(3) != [column.encode("utf-8")]:
                continue
            statistics = meta.get(12)
            if not isinstance(statistics, dict):
                null_count, exact = None, False
                continue
            nulls = statistics.get(3)
            null_count = null_count + nulls if null_count is not None and isinstance(nulls, int) else None
            low, high = statistics.get(6, statistics.get(2)), statistics.get(5, statistics.get(1))
            if meta.get(1) in _NUMERIC_PHYSICAL_TYPES and isinstance(low, bytes) and isinstance(high, bytes):
                values.update({low, high})
            elif not (isinstance(nulls, int) and nulls == meta.get(5)):  # an all-null chunk has no min/max
                exact = False
    return ColumnStats(null_count=null_count, single_value=exact and len(values) == 1)

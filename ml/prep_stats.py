"""Mergeable, exact statistics of rows: what the feature transform and the baseline are fitted from.

A Block summarises some rows column by column: the count of present values, a table of the distinct numbers and
how often each occurs (for a column a file holds as numbers), and the count of each category (for a column a file
holds as text). Blocks add and subtract exactly and in any order, so hosts that each read a share of the files give,
merged, the numbers one host reading every file gives: medians and quantile edges are read off the merged tables,
not estimated. Memory: a numeric column's table holds its distinct values (16 bytes each, so at most 16 bytes a
row for a continuous feature), a text column's counter its distinct categories.

Runs in SageMaker's scikit-learn container: numpy, pandas (1.x to 3.x) and the standard library.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings ship beside this script
    sys.path.insert(0, str(HERE))

from features import CATEGORICAL, MAX_LEVELS, NUMERIC, Feature, FeatureTransform, key_counts  # noqa: E402

INT, FLOAT, TEXT = "i", "f", "s"  # how a file holds a column: pandas' integer, float, or anything else
Table = tuple[np.ndarray, np.ndarray]  # distinct values ascending, and their counts


def column_kind(series: pd.Series) -> str:
    """Read as pandas reads it, so several files combine as pandas.concat would combine them: any text (or
    booleans) makes the column text; integers and floats together make floats."""
    if is_bool_dtype(series.dtype) or not is_numeric_dtype(series.dtype):
        return TEXT
    return INT if is_integer_dtype(series.dtype) else FLOAT


def frame_kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {str(name): column_kind(frame[name]) for name in frame.columns}


def _add_tables(left: Table | None, right: Table, sign: int = 1) -> Table:
    if left is None:
        left = (np.array([], dtype=np.float64), np.array([], dtype=np.int64))
    values, inverse = np.unique(np.concatenate([left[0], right[0]]), return_inverse=True)
    counts = np.zeros(len(values), dtype=np.int64)
    np.add.at(counts, inverse.reshape(-1), np.concatenate([left[1], sign * right[1]]))
    kept = counts != 0
    return values[kept], counts[kept]


@dataclass
class ColumnStats:
    """One column over some rows."""

    present: int = 0
    tables: dict[str, Table] = field(default_factory=dict)  # INT or FLOAT: the numbers a file held as such
    categories: Counter = field(default_factory=Counter)  # text values by the key the transform matches them by

    @classmethod
    def of(cls, series: pd.Series, kind: str) -> ColumnStats:
        present = series[series.notna()]
        stats = cls(present=len(present))
        if kind == TEXT:
            stats.categories = key_counts(present)  # by their text, as the transform encodes them
        elif len(present):
            values, counts = np.unique(present.to_numpy(dtype=np.float64), return_counts=True)
            stats.tables[kind] = (values, counts.astype(np.int64))
        return stats

    def add(self, other: ColumnStats, sign: int = 1) -> None:
        self.present += sign * other.present
        for kind, table in other.tables.items():
            self.tables[kind] = _add_tables(self.tables.get(kind), table, sign)
        if sign > 0:
            self.categories.update(other.categories)
        else:
            self.categories.subtract(other.categories)
            self.categories = Counter({key: count for key, count in self.categories.items() if count})


@dataclass
class Block:
    """Rows summarised: how many, and each column's statistics (a column a file lacks is missing in its rows)."""

    rows: int = 0
    columns: dict[str, ColumnStats] = field(default_factory=dict)

    @classmethod
    def of(cls, frame: pd.DataFrame, kinds: dict[str, str]) -> Block:
        return cls(len(frame), {str(name): ColumnStats.of(frame[name], kinds[str(name)]) for name in frame.columns})

    def add(self, other: Block, sign: int = 1) -> None:
        self.rows += sign * other.rows
        for name, stats in other.columns.items():
            self.columns.setdefault(name, ColumnStats()).add(stats, sign)


@dataclass
class Column:
    """A column's merged statistics, resolved to one type as pandas would read every file together."""

    name: str
    text: bool
    integral: bool  # numeric and every finite value whole (or only integer files)
    rows: int
    present: int
    values: np.ndarray  # numeric: distinct present values ascending (infinities included)
    counts: np.ndarray
    categories: dict[str, int]  # text: count per category

    @property
    def finite(self) -> Table:
        kept = np.isfinite(self.values)
        return self.values[kept], self.counts[kept]


def resolve(name: str, stats: ColumnStats, kinds: set[str], rows: int) -> Column:
    empty = np.array([], dtype=np.float64)
    if TEXT in kinds:
        categories = Counter(stats.categories)
        for kind, (values, counts) in stats.tables.items():
            for value, count in zip(values.tolist(), counts.tolist()):  # noqa: B905 - Python 3.9 in the container
                categories[str(int(value)) if kind == INT else str(float(value))] += count
        return Column(name, True, False, rows, stats.present, empty, empty.astype(np.int64), dict(categories))
    table: Table | None = None
    for part in stats.tables.values():
        table = _add_tables(table, part)
    values, counts = table if table is not None else (empty, empty.astype(np.int64))
    finite = values[np.isfinite(values)]
    integral = bool(len(finite) and np.array_equal(finite, np.floor(finite))) or kinds == {INT}
    return Column(name, False, integral, rows, stats.present, values, counts, {})


def value_at(table: Table, ranks: np.ndarray) -> np.ndarray:
    """The values at these 0-based ranks of the sorted multiset the table stands for."""
    values, counts = table
    return values[np.searchsorted(np.cumsum(counts), ranks, side="right")]


def median(table: Table) -> float:
    """np.median of the multiset: the mean of its two middle values (one, twice, when the count is odd)."""
    total = int(table[1].sum())
    if not total:
        return 0.0
    low, high = value_at(table, np.array([(total - 1) // 2, total // 2]))
    return float(np.mean([low, high]))


def fit_transform(columns: list[Column], target: str, problem: str, labels: list[Any] | None,
                  label_rows: dict[str, int] | None, max_levels: int = MAX_LEVELS) -> FeatureTransform:
    """FeatureTransform.fit's result, from merged statistics of the training rows."""
    features = []
    for column in columns:
        if column.name == target:
            continue
        if column.text:
            ranked = sorted(column.categories.items(), key=lambda item: (-item[1], item[0]))
            features.append(Feature(column.name, CATEGORICAL, levels=[level for level, _ in ranked[:max_levels]]))
        else:
            features.append(Feature(column.name, NUMERIC, median=median(column.finite)))
    return FeatureTransform(target, problem, features, labels, label_rows)

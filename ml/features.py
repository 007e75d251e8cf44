"""The feature transform shared by preprocess, train, evaluate and inference.

Fitted on raw training rows, saved as transform.json beside the model, and applied unchanged at
evaluation and serving time, so a model always sees its features encoded the way it was trained:
numeric columns as floats with the training median for missing values, categorical columns as
integer codes of the levels seen in training (-1 for missing, rare or unseen values), and the
target as class indices 0..k-1 (classification) or floats (regression).

Runs in SageMaker's containers too: keep to APIs that pandas 1.x/2.x, numpy 1.x and Python 3.9 have.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "selfheal-transform"
VERSION = 1
PROBLEMS = ("binary", "multiclass", "regression")
NUMERIC = "numeric"
CATEGORICAL = "categorical"
MAX_LEVELS = 50
UNKNOWN = -1.0

# pandas reads true/TRUE/True alike as booleans, so a client sending any of them means the same level.
_BOOLEAN_LEVELS = {"True", "False"}


class TransformError(ValueError):
    """Rows the transform cannot encode."""


class MissingColumnsError(TransformError):
    """Feature columns absent from the rows."""


class NonNumericError(TransformError):
    """A value that is not a number in a numeric feature."""


class UnknownLabelError(TransformError):
    """Target values outside the label set the model was trained on."""


def _key(value: Any) -> str:
    """The text a categorical value or label is matched by, whatever type the reader gave it."""
    return value if isinstance(value, str) else str(value)


# Values of one of these kinds throughout have one key per distinct value, so _key can run once a distinct value
# (pandas would take 1, 1.0 and True for one value, or 0.0 and -0.0, whose keys differ).
_ONE_KEY_EACH = ("string", "integer", "boolean")


def key_counts(values: pd.Series) -> Counter:
    """How many of each key the values hold (counted in C when they have one key per distinct value)."""
    if pd.api.types.infer_dtype(values, skipna=False) in _ONE_KEY_EACH:
        return Counter({_key(value): count for value, count in values.value_counts().items()})
    return Counter(_key(value) for value in values.tolist())


def key_codes(values: np.ndarray, codes: Mapping[str, int]) -> np.ndarray:
    """codes[_key(value)] for each value, -1 where it has none (looked up once a distinct value when each has one
    key)."""
    if pd.api.types.infer_dtype(values, skipna=False) in _ONE_KEY_EACH:
        positions, distinct = pd.factorize(values)
        return np.array([codes.get(_key(value), -1) for value in distinct], dtype=np.int64)[positions]
    return np.array([codes.get(_key(value), -1) for value in values], dtype=np.int64)


def _label_order(value: Any) -> tuple[bool, Any]:
    """Numbers (and booleans) first in numeric order, then text: never fails on mixed types."""
    is_number = isinstance(value, (bool, int, float, np.number))
    return (not is_number, value if is_number else str(value))


def _as_array(column: Any) -> np.ndarray:
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=object)
    return np.asarray(column) if isinstance(column, np.ndarray) else np.array(column, dtype=object)


def _to_float(column: Any, name: str) -> np.ndarray:
    """Floats for a numeric column; NaN where missing; NonNumericError naming the first bad value."""
    if isinstance(column, pd.Series) and pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    values = _as_array(column)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    suspects = np.flatnonzero(np.isnan(numbers) & ~pd.isna(values))
    bad = [i for i in suspects if not (isinstance(values[i], str) and not values[i].strip())]
    if bad:
        row = bad[0]
        raise NonNumericError(
            f"feature '{name}' expects a number, got {values[row]!r} (row {row + 1}, "
            f"{len(bad)} bad value{'s' if len(bad) > 1 else ''} in this column)"
        )
    return numbers


@dataclass
class Feature:
    name: str
    kind: str
    median: float | None = None
    levels: list[str] | None = None
    _codes: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in (NUMERIC, CATEGORICAL):
            raise ValueError(f"feature '{self.name}': unknown kind {self.kind!r}")
        levels = self.levels or []
        self._codes = {level: float(code) for code, level in enumerate(levels)}
        if levels and set(levels) <= _BOOLEAN_LEVELS:
            for level in levels:
                self._codes[level.lower()] = self._codes[level.upper()] = self._codes[level]
        self._index = pd.Index(list(self._codes), dtype=object)
        self._values = np.fromiter(self._codes.values(), dtype=np.float64, count=len(self._codes))

    @classmethod
    def fit(cls, name: str, column: pd.Series, max_levels: int) -> Feature:
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
            values = _to_float(column, name)
            finite = values[np.isfinite(values)]
            return cls(name, NUMERIC, median=float(np.median(finite)) if finite.size else 0.0)
        counts = key_counts(column[column.notna()])
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls(name, CATEGORICAL, levels=[level for level, _ in ranked[:max_levels]])

    def encode(self, column: Any) -> np.ndarray:
        if self.kind == NUMERIC:
            values = _to_float(column, self.name)
            # XGBoost refuses infinities; they are as uninformative as a missing value here.
            return np.where(np.isfinite(values), values, self.median)
        values = _as_array(column)
        # A hash lookup in C for the usual case (text values); only the misses are retried as text,
        # so numbers typed by a client still match the levels pandas read as text in training.
        positions = self._index.get_indexer(values)
        missed = np.flatnonzero(positions < 0)
        if missed.size:
            positions[missed] = self._index.get_indexer([_key(value) for value in values[missed]])
        positions[pd.isna(values)] = -1
        return self.codes_at(positions)

    @property
    def keys(self) -> list[str]:
        """Every text that names a level (booleans in any case), in the order codes_at's positions count."""
        return list(self._codes)

    def codes_at(self, positions: np.ndarray) -> np.ndarray:
        """Codes of values found at these positions in `keys`; UNKNOWN where a position is negative (not found,
        missing). Lets a reader that looks values up itself (pyarrow's index_in, at serving) encode like encode."""
        if not self._codes:  # a column that was empty in training: every value is unknown
            return np.full(len(positions), UNKNOWN, dtype=np.float64)
        return np.where(positions >= 0, self._values[positions], UNKNOWN)

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == NUMERIC:
            spec["median"] = self.median
        else:
            spec["levels"] = self.levels
        return spec


class FeatureTransform:
    """Raw rows → float32 matrix in training feature order, plus target encoding."""

    def __init__(self, target: str, problem: str, features: list[Feature], labels: list[Any] | None,
                 label_rows: dict[str, int] | None = None) -> None:
        if problem not in PROBLEMS:
            raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}, got {problem!r}")
        if not features:
            raise ValueError("no feature columns: the data holds only the target column")
        if problem != "regression":
            _check_labels(problem, target, labels or [])
        self.target = target
        self.problem = problem
        self.features = features
        self.labels = labels if problem != "regression" else None
        # Rows per class in the rows it was fitted on (the training split): a class with none cannot be learnt.
        self.label_rows = label_rows if problem != "regression" else None
        self._label_codes = {_key(label): code for code, label in enumerate(self.labels or [])}

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        target: str,
        problem: str,
        labels: list[Any] | None = None,
        max_levels: int = MAX_LEVELS,
    ) -> FeatureTransform:
        """Fit on raw rows. `labels` lets the caller fix the class set (e.g. from all rows, not one split)."""
        if target not in frame.columns:
            raise MissingColumnsError(f"target column '{target}' not in the data")
        features = [Feature.fit(str(name), frame[name], max_levels) for name in frame.columns if name != target]
        if problem == "regression":
            return cls(target, problem, features, None)
        if labels is None:
            labels = class_labels(frame[target])
        seen = key_counts(frame[target].dropna())
        return cls(target, problem, features, labels, {_key(label): seen[_key(label)] for label in labels})

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def apply(self, frame: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Encode rows given as a DataFrame or a mapping of column name → 1-D values.

        Extra columns (the target among them) are ignored and column order does not matter.
        """
        missing = [name for name in self.feature_names if name not in frame]
        if missing:
            raise MissingColumnsError(f"missing feature column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        rows = len(frame) if isinstance(frame, pd.DataFrame) else len(frame[self.features[0].name])
        matrix = np.empty((rows, len(self.features)), dtype=np.float32)
        for position, feature in enumerate(self.features):
            matrix[:, position] = feature.encode(frame[feature.name])
        return matrix

    def encode_target(self, column: Any) -> np.ndarray:
        """Class indices (classification) or floats (regression) for target values."""
        if self.problem == "regression":
            return _to_float(column, self.target)
        values = _as_array(column)
        codes = key_codes(values, self._label_codes)
        unknown = sorted({_key(value) for value in values[codes < 0]})
        if unknown:
            raise UnknownLabelError(
                f"target '{self.target}' has values the model has no class for: {', '.join(unknown[:10])} "
                f"(classes: {', '.join(map(str, self.labels or []))})"
            )
        return codes

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "target": self.target,
            "problem": self.problem,
            "features": [feature.to_dict() for feature in self.features],
            "labels": self.labels,
            "label_rows": self.label_rows,
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FeatureTransform:
        if spec.get("format") != FORMAT or spec.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} document")
        features = [
            Feature(item["name"], item["kind"], median=item.get("median"), levels=item.get("levels"))
            for item in spec["features"]
        ]
        return cls(spec["target"], spec["problem"], features, spec.get("labels"), spec.get("label_rows"))

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> FeatureTransform:
        return cls.loads(Path(path).read_bytes())

    @classmethod
    def loads(cls, document: bytes | str) -> FeatureTransform:
        return cls.from_dict(json.loads(document))


def class_labels(target: pd.Series) -> list[Any]:
    """The distinct target values as plain JSON-able Python values, in a stable order."""
    return sorted(pd.Series(target.dropna().unique()).tolist(), key=_label_order)


def _check_labels(problem: str, target: str, labels: list[Any]) -> None:
    if problem == "binary" and len(labels) != 2:
        raise ValueError(f"a binary problem needs exactly 2 classes in '{target}', found {len(labels)}: {labels[:10]}")
    if problem == "multiclass" and len(labels) < 2:
        raise ValueError(f"a multiclass problem needs at least 2 classes in '{target}', found {labels}")

"""Which part (train, validation, test) each labelled row goes to, the same whichever host reads it.

Every row gets a position u in [0, 1) from a hash of its content and the split's seed, so a host places its rows
without seeing anyone else's: a row lands in the same part on one instance or on many, and identical rows always
share a part (no copy of a test row is trained on). A class's parts are cut along u at its own quantiles (u below
its test cut: test; below its validation cut: validation; the rest: train), so the split is stratified exactly, to
a row (bar identical rows, which sit together): the cuts need every row's u of the class, 8 bytes a row, which the
merge holds. Hosts place rows provisionally at the split's shares (test below `test`, validation below
`test + validation`); the merge moves the few rows between a provisional cut and the class's own.

Rules kept from the split before it (issue 12): with at least HOLDOUT_MIN_ROWS rows of labelled traffic, the test
rows are its newest (the newest `test` share of it, at least HOLDOUT_FLOOR rows or half) and every other row is
trained on or validated; otherwise a class with fewer rows than the three parts is trained on whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TRAIN, VALIDATION, TEST = 0, 1, 2
PARTS = {"train": TRAIN, "validation": VALIDATION, "test": TEST}
MIN_ROWS = 10
HOLDOUT_MIN_ROWS = 20  # labelled traffic smaller than this is split like any other data
HOLDOUT_FLOOR = 50  # the newest rows tested: the split's test share of them, and at least this many (or half)
_MASK = (1 << 64) - 1


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every bit of the input moves every bit of the output."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def row_positions(rows: pd.DataFrame, seed: int) -> np.ndarray:
    """Each row's u in [0, 1): its content's hash (pandas' stable hash of every value, in column order) mixed with
    the seed, so another seed gives another split."""
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy(dtype=np.uint64)
    salt = _mix(np.array([seed & _MASK], dtype=np.uint64))[0]
    return (_mix(hashed ^ salt) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def place(u: np.ndarray, test_cut: np.ndarray | float, validation_cut: np.ndarray | float) -> np.ndarray:
    return np.where(u < test_cut, TEST, np.where(u < validation_cut, VALIDATION, TRAIN)).astype(np.int8)


def _cut(sorted_u: np.ndarray, rank: int) -> float:
    """The u below which exactly `rank` of these rows lie (1.0: all of them)."""
    return float(sorted_u[rank]) if rank < len(sorted_u) else 1.0


def _share(fraction: float, rows: int) -> int:
    return math.floor(fraction * rows + 0.5)


@dataclass
class Plan:
    """The split, decided once every host's rows are counted: each class's cuts, and the newest labelled traffic."""

    test: float
    validation: float
    cuts: dict[Any, tuple[float, float]]  # class (None for regression) → (test cut, validation cut)
    holdout_from: dict[str, int]  # labelled-traffic file → its first row (of its labelled rows) tested

    @staticmethod
    def newest(holdout_rows: list[tuple[str, int]], test: float) -> dict[str, int]:
        """The tested rows of the labelled traffic (its files oldest first, with their labelled rows): none when
        there is too little of it."""
        total = sum(rows for _, rows in holdout_rows)
        if total < HOLDOUT_MIN_ROWS:
            return {}
        start = total - max(math.ceil(test * total), min(HOLDOUT_FLOOR, total // 2))
        holdout_from = {}
        for name, rows in holdout_rows:
            holdout_from[name] = min(max(start, 0), rows)
            start -= rows
        return holdout_from

    @classmethod
    def decide(cls, settings: dict[str, Any], u_by_class: dict[Any, np.ndarray], holdout_from: dict[str, int],
               rare_allowed: bool) -> Plan:
        """`u_by_class`: the u of every labelled row but the tested labelled traffic's (`holdout_from`)."""
        test, validation = settings["test"], settings["validation"]
        cuts = {}
        for label, u in u_by_class.items():
            u = np.sort(u)
            if holdout_from:  # the newest traffic is the test set: the rest is trained on or validated
                cuts[label] = (0.0, _cut(u, _share(validation, len(u))))
            elif rare_allowed and len(u) < len(PARTS):  # too rare for every part: trained on, so it is learnt
                cuts[label] = (0.0, 0.0)
            else:
                tested = _share(test, len(u))
                cuts[label] = (_cut(u, tested), _cut(u, tested + _share(validation, len(u))))
        return cls(test, validation, cuts, holdout_from)

    @staticmethod
    def provisional(u: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
        """Where a host places rows before the merge knows the classes' cuts: at the split's shares."""
        return place(u, settings["test"], settings["test"] + settings["validation"])

    def parts(self, name: str, labels: pd.Series | None, u: np.ndarray) -> np.ndarray:
        """The final part of a file's labelled rows (in its order), from their classes (None: a regression's
        rows) and positions."""
        if labels is None:
            parts = place(u, *self.cuts[None])
        else:
            codes, classes = pd.factorize(labels)
            # A class only among the tested newest traffic has no cuts: its rows are tested whatever they say.
            cuts = np.array([self.cuts.get(label, (0.0, 0.0)) for label in classes.tolist()],
                            dtype=np.float64).reshape(-1, 2)
            parts = place(u, cuts[codes, 0], cuts[codes, 1])
        if name in self.holdout_from:
            parts[self.holdout_from[name]:] = TEST
        return parts


def by_class(labels: pd.Series | None, u: np.ndarray) -> dict[Any, np.ndarray]:
    """The rows' u by class (plain Python values, the keys of the cuts; None for a regression)."""
    if labels is None:
        return {None: u}
    codes, classes = pd.factorize(labels)
    return {label: u[codes == code] for code, label in enumerate(classes.tolist())}

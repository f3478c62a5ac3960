"""A LightGBM booster's trees read in blocks of rows that share most of their features.

The payment model reads each open invoice on each of the next 60 days
(:func:`~paycadence.models.policy.value.rolled_rows`) and the settlement hazard reads each one
once per bin (:func:`~paycadence.models.hazard.every_bin`): blocks of rows that differ only in
the few features time moves (days past due, age, weekday, days since the last contact...).
LightGBM walks every tree from its root for each row. :class:`Forest` walks each tree once
per block: a split on a feature every row of the block shares sends the whole block one way
after one comparison; only a split on a feature that varies within the block divides it. On a
stateless call of 200 debtors that is about three times less work for the two payment models
(``benchmarks/forest.py`` prints the ratio against ``Booster.predict``).

The outputs equal ``Booster.predict``'s bit for bit (tested): each row's tree outputs are
summed in LightGBM's order (tree 0 first, from 0.0), the decisions are LightGBM's numerical
ones (``<=`` the threshold; a missing value by the split's missing type and default side;
|x| ≤ 1e-35 read as 0, as its predictor reads dense rows), and the logistic link is libm's
``exp`` as in LightGBM. Thresholds and leaf values come from ``dump_model``, which prints
doubles with 17 significant digits. A booster this does not cover (categorical splits, linear
trees, several classes, an objective other than binary, cross-entropy or plain regression, a
leaf that is not a number, which LightGBM's JSON cannot hold) has no forest: :meth:`Forest.of`
returns None and the caller keeps ``Booster.predict``.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from numba import njit

from paycadence.models.estimators import THREADED_FROM, predict_threads
from paycadence.models.treeshap import (  # LightGBM's split semantics and node arrays: one copy
    MISSING,
    ZERO,
    split_arrays,
)

#: Links of the objectives a forest reproduces (output = link(raw score)).
IDENTITY, LOGISTIC = 0, 1
#: Threads a large prediction is split over (from
#: :data:`~paycadence.models.estimators.THREADED_FROM` rows × trees).
THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else (os.cpu_count() or 1)))
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Forest:
    """The trees of one booster as flat node arrays, in preorder; tree t starts at
    ``roots[t]``. A leaf has ``feature`` −1 and its value in ``value``."""

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing: np.ndarray
    default_left: np.ndarray
    value: np.ndarray
    link: int
    scale: float  # the logistic link's sigmoid parameter
    n_features: int
    widest: int  # nodes of the largest tree (the walk's stack never holds more)

    @classmethod
    def of(cls, booster: lgb.Booster) -> Forest | None:
        """The forest of ``booster``'s trees (those ``Booster.predict`` reads by default), or
        None when it has what a forest does not reproduce (module docstring)."""
        try:
            dump = booster.dump_model()
        except ValueError:  # LightGBM's JSON of a NaN or infinite leaf: unreadable
            return None
        link, scale = _link(str(dump.get("objective", "")))
        if link is None or dump.get("num_class", 1) != 1 or dump.get("average_output"):
            return None
        nodes: list[tuple] = []  # (feature, threshold, left, right, missing, default_left, v)
        roots, widest = [], 1

        def walk(node: dict) -> int:
            at = len(nodes)
            if "split_index" not in node:
                nodes.append((-1, 0.0, -1, -1, 0, False, float(node["leaf_value"])))
                return at
            if node.get("decision_type") != "<=" or "leaf_coeff" in node:
                raise _Unsupported
            nodes.append(None)
            left, right = walk(node["left_child"]), walk(node["right_child"])
            nodes[at] = (int(node["split_feature"]), float(node["threshold"]), left, right,
                         MISSING[node["missing_type"]], bool(node["default_left"]), 0.0)
            return at

        try:
            for tree in dump["tree_info"]:
                if tree.get("num_cat", 0) or tree.get("is_linear"):
                    return None
                first = len(nodes)
                roots.append(walk(tree["tree_structure"]))
                widest = max(widest, len(nodes) - first)
        except (_Unsupported, RecursionError, KeyError):
            return None
        columns = list(zip(*nodes, strict=True)) if nodes else [()] * 7
        return cls(roots=np.asarray(roots, np.int64), **split_arrays(columns),
                   value=np.asarray(columns[6], np.float64), link=link, scale=scale,
                   n_features=booster.num_feature(), widest=widest)

    def predict(self, X: np.ndarray, block: int, threads: int | None = None) -> np.ndarray:
        """``Booster.predict(X)``, for rows that come in blocks of ``block`` consecutive rows
        sharing most features (the last block may be shorter). ``threads``: how many threads
        share the blocks (default: :data:`THREADS` once rows × trees reach
        :data:`~paycadence.models.estimators.THREADED_FROM`)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"the forest reads {self.n_features} features, got an array of "
                             f"shape {X.shape}")
        n = X.shape[0]
        out = np.zeros(n)
        if n == 0:
            return out
        block = max(1, int(block))
        starts = np.append(np.arange(0, n, block, dtype=np.int64), n)
        if threads is None:
            threads = THREADS if n * len(self.roots) >= THREADED_FROM else 1
        parts = max(1, min(threads, len(starts) - 1))
        cuts = np.linspace(0, len(starts) - 1, parts + 1).round().astype(np.int64)
        args = (self.roots, self.feature, self.threshold, self.left, self.right, self.missing,
                self.default_left, self.value, self.link, self.scale, self.widest)
        if parts == 1:
            _walk(X, starts, *args, out)
        else:
            jobs = [_pool().submit(_walk, X, starts[cuts[k]:cuts[k + 1] + 1], *args, out)
                    for k in range(parts)]
            for job in jobs:
                job.result()
        return out


class _Unsupported(Exception):
    """A split a forest does not reproduce: the caller keeps ``Booster.predict``."""


def _link(objective: str) -> tuple[int | None, float]:
    """(link, sigmoid scale) of a dumped objective such as ``binary sigmoid:1``."""
    name, *settings = objective.split()
    if name in ("regression", "regression_l2", "l2", "mean_squared_error", "mse"):
        return IDENTITY, 1.0
    if name == "cross_entropy" and not settings:
        return LOGISTIC, 1.0
    if name == "binary":
        scale = dict(s.split(":", 1) for s in settings if ":" in s).get("sigmoid", "1")
        return LOGISTIC, float(scale)
    return None, 1.0


def _pool() -> ThreadPoolExecutor:
    """The threads large predictions are split over, made at the first (nothing is built at
    import)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(THREADS, thread_name_prefix="paycadence-forest")
        return _POOL


def _forget_pool() -> None:
    """In a forked child: the parent's threads are not there, its lock may be held."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@njit(cache=True, nogil=True)
def _walk(X, starts, roots, feature, threshold, left, right, missing, default_left, value,
          link, scale, widest, out):  # pragma: no cover - jit
    # Rows starts[0] .. starts[-1] of X, block by block (block b: rows starts[b] to
    # starts[b + 1]); each tree is walked once per block with the block's row numbers in
    # `idx`, divided in place at the splits on features that vary within the block.
    first, last = starts[0], starts[-1]
    nf = X.shape[1]
    same = np.empty(nf, np.bool_)
    idx = np.empty(last - first, np.int64)
    stack = np.empty((widest + 1, 3), np.int64)
    for b in range(starts.shape[0] - 1):
        a0, e0 = starts[b], starts[b + 1]
        for f in range(nf):  # which features every row of the block shares
            x0 = X[a0, f]
            shared = True
            for i in range(a0 + 1, e0):
                x = X[i, f]
                if not (x == x0 or (np.isnan(x) and np.isnan(x0))):
                    shared = False
                    break
            same[f] = shared
        for i in range(a0, e0):
            out[i] = 0.0
        for t in range(roots.shape[0]):
            for i in range(a0, e0):
                idx[i - first] = i
            stack[0, 0], stack[0, 1], stack[0, 2] = roots[t], a0 - first, e0 - first
            top = 1
            while top > 0:
                top -= 1
                node, a, e = stack[top, 0], stack[top, 1], stack[top, 2]
                while True:
                    f = feature[node]
                    if f < 0:
                        v = value[node]
                        for k in range(a, e):
                            out[idx[k]] += v
                        break
                    thr, m, dl = threshold[node], missing[node], default_left[node]
                    if same[f]:
                        x = X[idx[a], f]
                        if np.isnan(x):  # missing for the NaN and Zero types (as 0); None: 0
                            go = dl if m != 0 else 0.0 <= thr
                        elif -ZERO <= x <= ZERO:
                            go = dl if m == 1 else 0.0 <= thr
                        else:
                            go = x <= thr
                        node = left[node] if go else right[node]
                        continue
                    lo = a  # rows going left gather in idx[a:lo]
                    for k in range(a, e):
                        r = idx[k]
                        x = X[r, f]
                        if np.isnan(x):
                            go = dl if m != 0 else 0.0 <= thr
                        elif -ZERO <= x <= ZERO:
                            go = dl if m == 1 else 0.0 <= thr
                        else:
                            go = x <= thr
                        if go:
                            idx[k] = idx[lo]
                            idx[lo] = r
                            lo += 1
                    if lo == a:
                        node = right[node]
                    elif lo == e:
                        node = left[node]
                    else:
                        stack[top, 0], stack[top, 1], stack[top, 2] = right[node], lo, e
                        top += 1
                        node, e = left[node], lo
        if link == 1:
            for i in range(a0, e0):
                out[i] = 1.0 / (1.0 + math.exp(-scale * out[i]))


#: Each booster's forest (None: it has none), built at its first blocked prediction.
_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forest_of(booster: lgb.Booster) -> Forest | None:
    """``booster``'s :class:`Forest` (made once; None when it has none)."""
    try:
        return _FORESTS[booster]
    except KeyError:
        forest = _FORESTS[booster] = Forest.of(booster)
        return forest


def predict(booster: lgb.Booster, X: np.ndarray, block: int = 1, threads: int = 0
            ) -> np.ndarray:
    """``booster.predict(X)``: read with the booster's :class:`Forest` when the rows come in
    blocks of ``block`` > 1 rows sharing most features and it has one, else by LightGBM; on
    up to ``threads`` threads (0: all cores) once the work is worth it
    (:func:`~paycadence.models.estimators.predict_threads`). The same numbers either way."""
    forest = forest_of(booster) if block > 1 else None
    if forest is not None:
        return forest.predict(X, block, None if threads == 0 else threads)
    return booster.predict(X, num_threads=predict_threads(booster, X.shape[0], threads))

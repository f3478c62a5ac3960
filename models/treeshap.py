"""Exact TreeSHAP values of a LightGBM booster with shallow numerical trees, from tables.

LightGBM's ``pred_contrib`` runs the path-dependent TreeSHAP recursion (Lundberg et al. 2020,
Algorithm 2) for every row: O(leaves × depth²) work per tree, about 0.25 ms a row for the
``p_late`` model (~250–300 trees of at most 4 levels), half of a ``/recommend`` call's
compute.
The same values can be read from tables (the idea of Fast TreeSHAP v2, Yang 2021):

A leaf reached by the path of splits on the unique features U (|U| = u) adds to feature
i ∈ U the amount

    v · (o_i − z_i) · Σ_{S ⊆ U∖{i}} |S|! (u − |S| − 1)! / u! · Π_{j∈S} o_j · Π_{j∈U∖S∖{i}} z_j

where v is the leaf's value, z_j the share of the training rows (LightGBM's data counts) that
follow the path at the splits on j, and o_j ∈ {0, 1} whether the row follows the path at all
of them. Only the bits o depend on the row, so each leaf's amounts for the 2^u patterns of o
are computed once per model (:func:`tables`), and a row costs one pass over the nodes that
carries which path features it has failed (:func:`_shap`, :data:`CHUNK` rows at a time, so
that a tree's nodes and tables are read once for them). ``benchmarks/treeshap.py``, µs a row
against ``pred_contrib``'s: ~21 against ~232 for 1,000 rows, 23–42 against 240–249 for 10,
53–182 against 254–333 for one (hot / after other memory was touched).

The values equal LightGBM's ``pred_contrib`` up to the rounding of sums taken in another
order (|difference| below 1e-12 in the tests); the decisions follow LightGBM's numerical
splits exactly (``<=`` threshold; missing values by type ``None``/``Zero``/``NaN`` and
default direction; |x| ≤ 1e-35 read as 0, as LightGBM's predictor reads it). A booster with
categorical splits, or whose tables would exceed :data:`MAX_TABLE` values, has no tables:
:func:`tables` returns None and the caller uses ``pred_contrib``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from numba import njit

#: Largest table (values over all leaves) built for one booster: 2^u amounts of u features
#: per leaf; deeper models use LightGBM's own TreeSHAP.
MAX_TABLE = 4_000_000
#: LightGBM's kZeroThreshold (1e-35 as a float32): its predictor reads |x| ≤ this as 0.
ZERO = float(np.float32(1e-35))
MISSING = {"None": 0, "Zero": 1, "NaN": 2}


def split_arrays(columns: list) -> dict[str, np.ndarray]:
    """The split arrays of flat nodes — ``feature``, ``threshold``, ``left``, ``right``,
    ``missing``, ``default_left`` — from the first six columns of node tuples (a leaf's
    feature −1), as the kernels here and in :mod:`paycadence.models.forest` read them."""
    return {"feature": np.asarray(columns[0], np.int64),
            "threshold": np.asarray(columns[1], np.float64),
            "left": np.asarray(columns[2], np.int64), "right": np.asarray(columns[3], np.int64),
            "missing": np.asarray(columns[4], np.int8),
            "default_left": np.asarray(columns[5], np.bool_)}
#: Rows scored together, tree by tree (one read of a tree's nodes and tables for them all).
CHUNK = 32


@dataclass(frozen=True)
class Tables:
    """A booster's trees as flat node arrays plus each leaf's table of SHAP amounts.

    Node arrays are indexed by a node number over all trees, in preorder (a parent before
    its children); tree t's nodes are ``starts[t]`` to ``starts[t + 1]``. For a split,
    ``slot`` is the bit of its feature among the unique features of the path from its tree's
    root to it; for a leaf, ``feature`` is −1, ``width`` its number u of unique path
    features, ``offset`` where its 2^u × u amounts start in ``amounts`` and ``features_at``
    where its u feature indices start in ``path_features``.
    ``base`` is the sum of the trees' expected values.
    """

    starts: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing: np.ndarray
    default_left: np.ndarray
    slot: np.ndarray
    width: np.ndarray
    offset: np.ndarray
    features_at: np.ndarray
    amounts: np.ndarray
    path_features: np.ndarray
    base: float
    n_features: int


def _weights(u: int) -> np.ndarray:
    """|S|! (u − |S| − 1)! / u! for |S| = 0..u−1."""
    return np.array([math.factorial(k) * math.factorial(u - k - 1) / math.factorial(u)
                     for k in range(u)])


def _leaf_amounts(values: np.ndarray, zeros: np.ndarray) -> np.ndarray:
    """The (m, 2^u, u) amounts that m leaves of values ``values`` (m,) with u path features
    of zero fractions ``zeros`` (m, u) add to their path features, for each pattern of bits
    o (bit j: the row follows the path at every split on feature j)."""
    m, u = zeros.shape
    patterns = np.arange(2 ** u)
    one = ((patterns[:, None] >> np.arange(u)[None, :]) & 1).astype(float)  # (2^u, u)
    w = _weights(u)
    out = np.empty((m, 2 ** u, u))
    for i in range(u):
        # coefficients of Π_{j≠i} (z_j + o_j t), per leaf and pattern: [..., k] multiplies t^k
        poly = np.zeros((m, 2 ** u, u))
        poly[:, :, 0] = 1.0
        for j in range(u):
            if j == i:
                continue
            shifted = np.zeros_like(poly)
            shifted[:, :, 1:] = poly[:, :, :-1] * one[None, :, j, None]
            poly = poly * zeros[:, j, None, None] + shifted
        out[:, :, i] = values[:, None] * (one[None, :, i] - zeros[:, i, None]) * (poly @ w)
    return out


def tables(booster: lgb.Booster) -> Tables | None:
    """The SHAP tables of ``booster``, or None when it has a categorical split or its
    tables would hold more than :data:`MAX_TABLE` values (use ``pred_contrib`` then)."""
    nodes: list = []  # (feature, threshold, left, right, missing, default_left, slot)
    starts: list[int] = []
    leaves: list[tuple[int, float, list[int], list[float]]] = []  # node, value, path, z
    base, size = 0.0, 0

    def walk(node: dict, path: list[int], zeros: list[float]) -> int:
        nonlocal size
        at = len(nodes)
        if "split_index" not in node:
            nodes.append((-1, 0.0, -1, -1, 0, False, 0))
            leaves.append((at, float(node["leaf_value"]), path, zeros))
            size += (2 ** len(path)) * len(path)
            return at
        if node["decision_type"] != "<=":  # categorical: pred_contrib
            raise _Unsupported
        f = int(node["split_feature"])
        slot = path.index(f) if f in path else len(path)
        if slot == len(path) and 2 ** (slot + 1) * (slot + 1) > MAX_TABLE:  # one leaf's table
            raise _Unsupported
        nodes.append(None)
        children = []
        for child in (node["left_child"], node["right_child"]):
            share = _count(child) / _count(node)
            if slot == len(path):
                on_path, fractions = [*path, f], [*zeros, share]
            else:
                on_path, fractions = path, list(zeros)
                fractions[slot] *= share
            children.append(walk(child, on_path, fractions))
        nodes[at] = (f, float(node["threshold"]), children[0], children[1],
                     MISSING[node["missing_type"]], bool(node["default_left"]), slot)
        return at

    try:
        for tree in booster.dump_model()["tree_info"]:
            top = tree["tree_structure"]
            if "split_index" not in top:  # a tree of one leaf: all of it is the base
                base += float(top["leaf_value"])
                continue
            starts.append(walk(top, [], []))
            base += _expected(top, _count(top))
            if size > MAX_TABLE:
                return None
    except (_Unsupported, RecursionError):  # RecursionError: a tree deeper than Python goes
        return None

    n = len(nodes)
    columns = list(zip(*nodes, strict=True)) or [()] * 7  # no split at all: all one-leaf
    widths = np.array([len(path) for _, _, path, _ in leaves], np.int64)
    sizes = (2 ** widths) * widths
    ends = np.cumsum(sizes)
    amounts = np.zeros(int(ends[-1]) if len(ends) else 0)
    for u in np.unique(widths[widths > 0]):
        which = np.flatnonzero(widths == u)
        block = _leaf_amounts(np.array([leaves[k][1] for k in which]),
                              np.array([leaves[k][3] for k in which]))
        begin = ends[which] - sizes[which]
        amounts[(begin[:, None] + np.arange(sizes[which[0]])).ravel()] = block.ravel()
    at = np.array([node for node, _, _, _ in leaves], np.int64)
    width, offset, features_at = (np.zeros(n, np.int64) for _ in range(3))
    width[at] = widths
    offset[at] = ends - sizes
    features_at[at] = np.cumsum(widths) - widths
    return Tables(
        starts=np.asarray([*starts, n], np.int64), **split_arrays(columns),
        slot=np.asarray(columns[6], np.int64), width=width, offset=offset,
        features_at=features_at, amounts=amounts,
        path_features=np.asarray([f for _, _, path, _ in leaves for f in path], np.int64),
        base=base, n_features=booster.num_feature())


class _Unsupported(Exception):
    """A split or a path the tables do not take: the caller uses ``pred_contrib``."""


def _count(node: dict) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


def _expected(node: dict, total: float) -> float:
    """The tree's mean output over its training rows (LightGBM's ExpectedValue)."""
    if "split_index" not in node:
        return node["leaf_count"] / total * node["leaf_value"]
    return _expected(node["left_child"], total) + _expected(node["right_child"], total)


def contributions(t: Tables, X: np.ndarray) -> np.ndarray:
    """SHAP values of the rows of ``X`` (n, d) with the expected value in a last column:
    the layout of LightGBM's ``predict(X, pred_contrib=True)``."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.zeros((X.shape[0], t.n_features + 1))
    _shap(X, t.starts, t.feature, t.threshold, t.left, t.right, t.missing, t.default_left,
          t.slot, t.width, t.offset, t.features_at, t.amounts, t.path_features, out)
    out[:, -1] = t.base
    return out


@njit(cache=True, nogil=True)
def _shap(X, starts, feature, threshold, left, right, missing, default_left, slot, width,
          offset, features_at, amounts, path_features, out):  # pragma: no cover - jit
    # Tree by tree, for CHUNK rows at a time (a tree's nodes and tables are read once for
    # them all); its nodes are numbered in preorder (a parent before its children), so one
    # pass over them carries to each node which path features a row failed on the way there.
    widest = 1
    for t in range(starts.shape[0] - 1):
        widest = max(widest, starts[t + 1] - starts[t])
    fails = np.zeros((widest, CHUNK), np.int64)
    for c0 in range(0, X.shape[0], CHUNK):
        rows = min(X.shape[0], c0 + CHUNK) - c0
        for t in range(starts.shape[0] - 1):
            first = starts[t]
            fails[0, :rows] = 0
            for node in range(first, starts[t + 1]):
                k = node - first
                f = feature[node]
                if f < 0:
                    u = width[node]
                    mask = (1 << u) - 1
                    at0, fa = offset[node], features_at[node]
                    for i in range(rows):
                        at = at0 + (mask & ~fails[k, i]) * u
                        for j in range(u):
                            out[c0 + i, path_features[fa + j]] += amounts[at + j]
                    continue
                m, thr, dl = missing[node], threshold[node], default_left[node]
                bit = 1 << slot[node]
                kl, kr = left[node] - first, right[node] - first
                for i in range(rows):
                    x = X[c0 + i, f]
                    if np.isnan(x):  # missing for the NaN and Zero types (as 0); None: 0
                        go_left = dl if m != 0 else 0.0 <= thr
                    elif -ZERO <= x <= ZERO:  # LightGBM reads |x| ≤ kZeroThreshold as 0
                        go_left = dl if m == 1 else 0.0 <= thr
                    else:
                        go_left = x <= thr
                    fail = fails[k, i]
                    fails[kl, i] = fail if go_left else fail | bit
                    fails[kr, i] = fail | bit if go_left else fail

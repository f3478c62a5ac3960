"""The settlement-day forecast: a discrete-time hazard model on LightGBM.

Time after the decision day ``D`` is cut into bins (:data:`EDGES`, in days after ``D``): thirteen
weeks, then coarser bins to a year. For an invoice open on ``D`` the model gives, per bin, the
*hazard*: the chance it settles in that bin given that it is still open at the bin's start.
One LightGBM classifier learns all bins at once from "person-period" rows (the invoice's
features, plus the bin's start, width and the invoice's days past due at the bin's start).

From the hazards follow, consistently, the probability of settling in each bin, the survival
curve ``S(t) = P(settled on D + t or later)``, and so ``expected_days_late`` and
``expected_settled_on`` (the median: as likely paid by then as not), ``p_unpaid_90d`` and the
expected cash per week for the next 13 weeks.
docs/models.md defines each figure.
"""

from __future__ import annotations

import numpy as np

#: Bin edges in days after the decision day: 13 weekly bins (the cash forecast's weeks), then
#: coarser bins up to a year. Bin ``k`` holds the days ``EDGES[k] .. EDGES[k+1] - 1``.
EDGES = np.array([0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91,
                  119, 154, 182, 273, 365], dtype=np.float64)
N_BINS = len(EDGES) - 1
CASH_WEEKS = 13
#: The columns a person-period row adds to the invoice's features.
BIN_FEATURES = ("bin_start", "bin_width", "days_past_due_at_bin")


def bin_rows(X: np.ndarray, past_due: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Rows of ``X`` with the bin columns appended, row ``i`` paired with ``bins[i]``."""
    start = EDGES[bins]
    width = EDGES[bins + 1] - start
    return np.column_stack([X, start, width, past_due + start])


def every_bin(X: np.ndarray, past_due: np.ndarray) -> np.ndarray:
    """Each row of ``X`` once per bin (row-major: row 0's bins, then row 1's...)."""
    n = X.shape[0]
    bins = np.tile(np.arange(N_BINS), n)
    rows = np.repeat(np.arange(n), N_BINS)
    return bin_rows(X[rows], past_due[rows], bins)


def training_rows(
    X: np.ndarray, past_due: np.ndarray, t_settle: np.ndarray, t_observed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Person-period rows of labelled snapshots.

    Parameters
    ----------
    X, past_due
        Features of snapshots and their days past due on the snapshot day.
    t_settle
        Days from the snapshot day to settlement (NaN when not settled by the data's end).
    t_observed
        Days observed after the snapshot day (data end − day + 1).

    Returns
    -------
    (rows, labels, snapshot)
        One row per snapshot and bin that is fully observed and not after the bin it settled
        in: label 1 in the settlement bin, 0 before. A bin cut by the data's end is left out
        whatever happened in it (censored), so that events are never counted where
        non-events could not be.
    """
    settled = ~np.isnan(t_settle)
    t = np.where(settled, t_settle, np.inf)
    idxs = [np.flatnonzero(_in_bin(k, t, t_observed)) for k in range(N_BINS)]
    # filled in place, bin by bin: the same rows as stacking the bins, without a second copy
    rows = np.empty((sum(i.size for i in idxs), X.shape[1] + len(BIN_FEATURES)))
    labels, owners, at = [], [], 0
    for k, idx in enumerate(idxs):
        if not idx.size:
            continue
        rows[at:at + idx.size] = bin_rows(X[idx], past_due[idx], np.full(idx.size, k))
        at += idx.size
        labels.append((t[idx] < EDGES[k + 1]).astype(np.float64))
        owners.append(idx)
    if not owners:
        return rows, np.empty(0), np.empty(0, int)
    return rows, np.concatenate(labels), np.concatenate(owners)


def n_training_rows(t_settle: np.ndarray, t_observed: np.ndarray) -> int:
    """How many person-period rows :func:`training_rows` makes of these snapshots, without
    making them."""
    t = np.where(np.isnan(t_settle), np.inf, t_settle)
    return int(sum(np.count_nonzero(_in_bin(k, t, t_observed)) for k in range(N_BINS)))


def _in_bin(k: int, t: np.ndarray, t_observed: np.ndarray) -> np.ndarray:
    """Snapshots with a person-period row in bin ``k``: the bin fully observed and not after
    the one they settled in (``t``: days to settlement, inf when open)."""
    return (EDGES[k + 1] <= t_observed) & (t >= EDGES[k])


def survival(hazards: np.ndarray) -> np.ndarray:
    """``S`` at every edge, shape (n, N_BINS + 1): ``S[:, k]`` = P(still open at EDGES[k])."""
    h = np.clip(hazards, 0.0, 1.0)
    return np.column_stack([np.ones(h.shape[0]), np.cumprod(1.0 - h, axis=1)])


def bin_probabilities(surv: np.ndarray) -> np.ndarray:
    """P(settles in bin k), shape (n, N_BINS); the rest (``surv[:, -1]``) is after a year."""
    return surv[:, :-1] - surv[:, 1:]


def survival_at(surv: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(settles on day ``t`` after the decision day or later), per row.

    Linear between edges (settlement spread evenly over a bin's days); 1 for ``t`` ≤ 0, the
    year-end value beyond the last edge.
    """
    t = np.asarray(t, dtype=np.float64)
    k = np.clip(np.searchsorted(EDGES, t, side="right") - 1, 0, N_BINS - 1)
    a, b = EDGES[k], EDGES[k + 1]
    rows = np.arange(surv.shape[0])
    frac = np.clip((t - a) / (b - a), 0.0, 1.0)
    inside = surv[rows, k] + frac * (surv[rows, k + 1] - surv[rows, k])
    return np.where(t <= 0, 1.0, np.where(t >= EDGES[-1], surv[:, -1], inside))


def median_wait(surv: np.ndarray) -> np.ndarray:
    """Days from the decision day until the invoice is as likely paid as not (S(t) = ½),
    linear within a bin; a year when it is more likely than not still open after a year."""
    below = surv <= 0.5
    k = np.where(below.any(axis=1), below.argmax(axis=1), surv.shape[1])
    rows = np.arange(surv.shape[0])
    out = np.full(surv.shape[0], EDGES[-1])
    hit = (k > 0) & (k < surv.shape[1])
    r, j = rows[hit], k[hit]
    s0, s1 = surv[r, j - 1], surv[r, j]
    frac = np.where(s0 > s1, (s0 - 0.5) / np.maximum(s0 - s1, 1e-12), 0.0)
    out[hit] = EDGES[j - 1] + frac * (EDGES[j] - EDGES[j - 1])
    return out

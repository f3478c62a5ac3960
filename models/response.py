"""The action-response model: how each action on a day changes the chance an invoice is paid.

Rows are (invoice, day) pairs from the logged history: every day an action named the invoice
(*treated*) and the weekly training snapshots on which nothing happened to it (*waited*). Each
row has the invoice's point-in-time features as of the morning of the day (so the action itself
and what it caused are never inside them), the action taken that day (one-hot; none = wait) and
the outcome: settled within :data:`RESPONSE_DAYS` days. One LightGBM classifier learns
``q(x, a) = P(settled within 14 days | features x, action a today)``; the uplift of an action is
``q(x, a) − q(x, wait)``.

The history was produced by a schedule that explored part of the time: treated rows are weighted
by the inverse of their logged propensity (clipped at :data:`MAX_WEIGHT`), so that actions the
schedule rarely chose in a situation count as much as if they had been drawn at random there.
docs/policy.md explains the choice.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from paycadence.features import FEATURES

#: Outcome window: settled within this many days after the action's day.
RESPONSE_DAYS = 14
#: Actions the model knows (wait is all zeros).
RESPONSE_ACTIONS = ("email", "sms", "letter", "phone", "payment_plan", "collection")
ACTION_FEATURES = tuple(f"act_{a}" for a in RESPONSE_ACTIONS)
#: Inverse-propensity weights are clipped here (variance against bias).
MAX_WEIGHT = 20.0


def with_action(X: np.ndarray, action: str) -> np.ndarray:
    """``X`` (rows in :data:`FEATURES` order) with the one-hot columns of ``action``."""
    onehot = np.zeros((X.shape[0], len(RESPONSE_ACTIONS)))
    if action in RESPONSE_ACTIONS:
        onehot[:, RESPONSE_ACTIONS.index(action)] = 1.0
    return np.column_stack([X, onehot])


def response_rows(snapshots: pl.DataFrame, treated: pl.DataFrame) -> pl.DataFrame:
    """Training rows of the response model.

    Parameters
    ----------
    snapshots
        Labelled snapshot rows (:func:`paycadence.features.build_snapshots`): the waited rows
        are those whose invoice had no action on their day.
    treated
        Labelled feature rows of (invoice, day) pairs on which an action named the invoice,
        with ``action`` and ``propensity`` (null when not logged) columns.

    Returns
    -------
    polars.DataFrame
        FEATURES, ``action`` ("wait" or the channel), ``y`` (settled within
        :data:`RESPONSE_DAYS` days) and ``weight``; rows whose window the data does not cover
        are left out.
    """
    keys = treated.select("invoice_id", "as_of").unique()
    waited = snapshots.join(keys, on=["invoice_id", "as_of"], how="anti").with_columns(
        action=pl.lit("wait"), propensity=pl.lit(None, dtype=pl.Float64))
    cols = [*FEATURES, "as_of", "action", "propensity", "t_settle", "t_observed"]
    both = pl.concat([waited.select(cols), treated.select(cols)], how="vertical_relaxed")
    weight = (1.0 / pl.col("propensity")).clip(1.0, MAX_WEIGHT).fill_null(1.0)
    return both.filter(pl.col("t_observed") >= RESPONSE_DAYS).with_columns(
        y=(pl.col("t_settle").is_not_null() & (pl.col("t_settle") < RESPONSE_DAYS))
        .cast(pl.Float64),
        weight=weight,
    ).drop("t_settle", "t_observed", "propensity")


def design(rows: pl.DataFrame) -> np.ndarray:
    """The model's input matrix for response rows (FEATURES then the action one-hot)."""
    # filled in place: one matrix, not the features, their float copy and the stacked one
    out = np.empty((rows.height, len(FEATURES) + len(RESPONSE_ACTIONS)))
    out[:, :len(FEATURES)] = rows.select(FEATURES).to_numpy()
    actions = rows["action"].to_numpy()
    for j, a in enumerate(RESPONSE_ACTIONS):
        out[:, len(FEATURES) + j] = actions == a
    return out

"""The rows and matrices of ``train``'s fits, each made once and handed to LightGBM uncopied.

scikit-learn's ``validate_data`` turns a pandas frame into the float64 matrix it hands to
LightGBM: a frame of one C- or F-ordered float64 block comes back as that block itself, while a
frame of many column blocks (what ``polars.DataFrame.to_pandas`` gives) is copied once more, and
``pd.DataFrame(X)`` of a numpy matrix copies it too (pandas ≥ 3). :func:`frame_of` wraps a
matrix without copying it, so that a fit holds one matrix of its rows, not three; the values, and
so the models, are the same (docs/scaling.md, "What `train --features` holds on its driver").

A fit's rows are filtered from :func:`narrow` selects (the features and the few columns it
reads, not every snapshot column), and the settlement model's person-period rows
(:func:`hazard_rows`) are counted before they are made, so that above ``train.hazard_max_rows``
only the sampled snapshots' rows ever exist.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import polars as pl

from paycadence.features import FEATURES
from paycadence.models.hazard import n_training_rows, training_rows


def frame_of(X: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """``X`` (n, d) as a pandas frame named by ``columns``, sharing its memory (no copy)."""
    return pd.DataFrame(X, columns=list(columns), copy=False)


def feature_frame(rows: pl.DataFrame) -> pd.DataFrame:
    """The snapshot features of ``rows`` (:data:`paycadence.features.FEATURES`, in order) as
    one float64 matrix in a pandas frame: one copy of the features, nulls as NaN."""
    return frame_of(rows.select(FEATURES).to_numpy().astype(np.float64, copy=False), FEATURES)


def narrow(snaps: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """The features, ``columns`` and ``sampled_share`` (when there) of ``snaps``: what a
    fit reads, so that filtering its rows copies only those columns."""
    extra = [c for c in (*columns, "sampled_share") if c in snaps.columns and c not in FEATURES]
    return snaps.select(*FEATURES, *dict.fromkeys(extra))


def weighted(snaps: pl.DataFrame) -> bool:
    """Whether snapshots are a stratified sample: their rows were kept at different shares."""
    return "sampled_share" in snaps.columns and snaps["sampled_share"].n_unique() > 1


def sample_weights(snaps: pl.DataFrame) -> np.ndarray:
    """Each snapshot's weight: 1 / the share of its stratum that was kept."""
    return 1.0 / snaps["sampled_share"].to_numpy().astype(np.float64)


def self_weighting(snaps: pl.DataFrame, *, seed: int) -> pl.DataFrame:
    """A stratified sample thinned to its lowest share (a row of share s kept with
    probability min share / s, a seeded draw): every row then stands for as many of the
    book's, so unweighted steps (early stopping, calibration) see the book's mix. Snapshots
    that are not :func:`weighted` are returned as they are."""
    if not weighted(snaps):
        return snaps
    share = snaps["sampled_share"].to_numpy().astype(np.float64)
    keep = np.random.default_rng(seed).random(snaps.height) < share.min() / share
    return snaps.filter(pl.Series(keep))


def hazard_rows(snaps: pl.DataFrame, *, max_rows: int, seed: int, weights: bool = False):
    """Person-period rows (:func:`paycadence.models.hazard.training_rows`) of labelled
    snapshots, their labels and (with ``weights``) their snapshot's weight
    (:func:`sample_weights`; else None); when there would be more than ``max_rows``, a fixed
    random share of snapshots is used."""
    t_settle = snaps["t_settle"].fill_null(np.nan).to_numpy().astype(np.float64)
    t_observed = snaps["t_observed"].to_numpy().astype(np.float64)
    snaps = snaps.select(*FEATURES, *(["sampled_share"] if weights else []))
    n = n_training_rows(t_settle, t_observed)
    if n > max_rows:  # the rows of a fixed random share of snapshots, drawn before any is made
        keep = np.random.default_rng(seed).random(snaps.height) < max_rows / n
        snaps = snaps.filter(pl.Series(keep))
        t_settle, t_observed = t_settle[keep], t_observed[keep]
    X = snaps.select(FEATURES).to_numpy().astype(np.float64, copy=False)
    past_due = snaps["days_past_due"].to_numpy().astype(np.float64)
    w = sample_weights(snaps) if weights else None
    rows, y, owner = training_rows(X, past_due, t_settle, t_observed)
    return rows, y, (w[owner] if w is not None else None)

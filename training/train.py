"""Train, evaluate and register the risk forecasts, tracked in MLflow.

:func:`train` builds labelled snapshots from the history, splits them by time (train on the
past, hold out the most recent snapshots, with an embargo between), fits the calibrated
late-payment model and the settlement-hazard model, compares them with the naive reference on
the holdout, and registers the result. The new version becomes ``champion`` only when it is at
least as good as the current champion on this same holdout (:func:`gate`); otherwise it is
``challenger`` and the result says why.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import polars as pl

from paycadence import __version__
from paycadence.config import Params, Policy
from paycadence.data import TABLE_NAMES, Tables, known_as_of
from paycadence.errors import InputError
from paycadence.features import FEATURES, build_snapshots, snapshot_dates
from paycadence.features import label as label_snapshots
from paycadence.features.pit import features_at
from paycadence.features.snapshots import (
    GOLDEN,
    STRATA,
    mix64,
    sampling_shares,
    stratum_rows,
)
from paycadence.models import LateRiskModel, RiskModels, calibration, naive_forecast
from paycadence.models.calibration import Calibrator
from paycadence.models.hazard import BIN_FEATURES, CASH_WEEKS
from paycadence.models.policy import STRENGTH
from paycadence.models.response import ACTION_FEATURES, design, response_rows
from paycadence.training import metrics as M
from paycadence.training import plots, tracking
from paycadence.training.bounded import (
    OpeSample,
    ScannedTables,
    fingerprint_of,
    frame_parts,
    ope_sample,
)
from paycadence.training.matrices import (
    feature_frame,
    frame_of,
    hazard_rows,
    narrow,
    sample_weights,
    self_weighting,
    weighted,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "paycadence-risk"
LABELS = {"late": "y_late", "days": "y_days_late", "unpaid": "y_unpaid_90d"}


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced and decided."""

    run_id: str
    version: str
    alias: str
    reason: str
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    split_date: dt.date
    models: RiskModels = field(repr=False)
    #: the holdout's reliability points (see :func:`paycadence.training.plots.reliability_table`)
    reliability: pl.DataFrame | None = field(default=None, repr=False)


def cut_tables(tables: Tables | ScannedTables, as_of: dt.date) -> Tables | ScannedTables:
    """Only what was known on the morning of ``as_of`` (train as if it were that day)."""
    if isinstance(tables, ScannedTables):
        return tables.cut(as_of)
    out = {"debtors": tables.debtors}
    for name in TABLE_NAMES[1:]:
        out[name] = known_as_of(getattr(tables, name), as_of, table=name)
    return Tables(**out)


def fingerprint(tables: Tables | ScannedTables) -> str:
    """A short, order-independent digest of the tables' contract columns (of scanned tables:
    summed batch by batch, the same digest in bounded memory)."""
    return fingerprint_of(fingerprint_parts(tables))


def fingerprint_parts(tables: Tables | ScannedTables) -> dict[str, tuple[int, int]]:
    """Per table, its rows and the sum of its rows' hashes (modulo 2**64): parts of a book
    (hash buckets of debtors, batches of rows) add up to the whole book's
    (:func:`paycadence.training.bounded.fingerprint_of`)."""
    if isinstance(tables, ScannedTables):
        return tables.fingerprint_parts()
    return {name: frame_parts(name, frame) for name, frame in tables.items()}


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def split_day(dates: list[dt.date], *, holdout_share: float) -> dt.date:
    """The first held-out day of :func:`time_split`, from the snapshot days (ascending, each
    once): the last ``holdout_share`` of them are held out."""
    if len(dates) < 4:
        raise InputError(
            f"too little history to train: {len(dates)} snapshot dates; simulate or export at "
            "least six months of invoices"
        )
    return dates[min(int(len(dates) * (1 - holdout_share)), len(dates) - 1)]


def time_split(snaps: pl.DataFrame, *, holdout_share: float, embargo_days: int):
    """Split snapshots by date: the last ``holdout_share`` of dates held out, an embargo before."""
    split = split_day(snaps["as_of"].unique().sort().to_list(), holdout_share=holdout_share)
    train = snaps.filter(pl.col("as_of") < split - dt.timedelta(days=embargo_days))
    holdout = snaps.filter(pl.col("as_of") >= split)
    if train.height == 0:
        train = snaps.filter(pl.col("as_of") < split)
    return train, holdout, split


def snapshots(tables: Tables, params: Params, strata: dict | None = None
              ) -> tuple[pl.DataFrame, dt.date]:
    """The labelled training snapshots of ``params`` and the data's last day.

    Above ``features.max_snapshot_rows`` rows a stratified sample of (debtor, day) pairs is
    kept (:func:`sampling_plan`); ``strata``, when given, receives the plan.
    """
    last = tables.last_date
    if last is None:
        raise InputError("no invoices to train on")
    dates = snapshot_dates(tables, every_days=params.features.snapshot_every_days,
                           min_history_days=params.features.min_history_days)
    plan = sampling_plan(stratum_rows(tables, dates, horizon_days=params.train.horizon_days),
                         params)
    if strata is not None:
        strata.update(plan)
    snaps = build_snapshots(tables, dates, horizon_days=params.train.horizon_days, data_end=last,
                            seed=params.features.snapshot_seed,
                            shares={k: v["share"] for k, v in plan.items()})
    if snaps.height == 0:
        raise InputError("no open invoice on any snapshot date: nothing to learn from")
    return snaps, last


def sampling_plan(rows: dict[str, int], params: Params) -> dict[str, dict]:
    """Rows and kept share of each snapshot stratum (``current``, ``overdue``: see
    :func:`paycadence.features.snapshots.sampling_shares`) for the settings of ``params``."""
    shares = sampling_shares(rows, max_rows=params.features.max_snapshot_rows,
                             overdue_oversampling=params.features.overdue_oversampling)
    return {k: {"rows": int(rows.get(k, 0)), "share": shares[k]} for k in STRATA}


def kept_share(plan: dict[str, dict]) -> float:
    """The share of all snapshot rows a sampling plan keeps, in expectation."""
    total = sum(v["rows"] for v in plan.values())
    shares = {v["share"] for v in plan.values()}
    if len(shares) == 1 or total == 0:
        return float(next(iter(shares)))
    return float(sum(v["rows"] * v["share"] for v in plan.values()) / total)


#: What the saved snapshots were built from; training refuses them for other data or settings.
SNAPSHOT_FILE, SNAPSHOT_META = "snapshots.parquet", "snapshots.json"
#: The response model's treated rows, saved beside the snapshots (see :func:`treated_plan`).
TREATED_FILE = "treated.parquet"
#: The order of saved snapshots and treated rows (both engines write it).
ROW_ORDER = ("as_of", "debtor_id", "due_date", "invoice_id")




def snapshot_key(digest: str, params: Params, as_of: dt.date | None) -> dict:
    """What snapshots are built from: the data's :func:`fingerprint`, the day and the
    settings (``train --features`` refuses snapshots whose key differs from its own)."""
    return {"data_fingerprint": digest,
            "as_of": as_of.isoformat() if as_of else None,
            "features": params.features.model_dump(),
            "horizon_days": params.train.horizon_days}


def save_snapshots(tables: Tables, params: Params, out: str | Path,
                   as_of: dt.date | None = None) -> tuple[Path, int]:
    """Build the labelled training snapshots (the features stage of ``dvc.yaml``) into
    ``out``: ``snapshots.parquet``, the response model's treated rows before the split
    ``train`` will make (``treated.parquet``, :func:`treated_plan`) and ``snapshots.json``
    (what they were built from). Returns the directory and the number of snapshot rows."""
    if as_of is not None:
        tables = cut_tables(tables, as_of)
    plan: dict = {}
    snaps, last = snapshots(tables, params, plan)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / SNAPSHOT_FILE
    clear_output(data_path)  # an earlier --engine spark build is a folder
    snaps.write_parquet(data_path)
    clear_output(out / TREATED_FILE)
    before = treated_before(snaps["as_of"].unique().sort().to_list(), params)
    treated = None
    if before is not None:
        treated = treated_plan(action_pairs(tables), before=before, data_end=last,
                               params=params)
        rows = treated_rows(tables, before=before, horizon_days=params.train.horizon_days,
                            data_end=last, share=treated["share"],
                            seed=params.features.snapshot_seed)
        treated["rows"] = rows.height
        if rows.height:
            rows.sort(ROW_ORDER).write_parquet(out / TREATED_FILE)
    write_snapshot_meta(out, snapshot_key(fingerprint(tables), params, as_of), snaps.height,
                        plan, treated)
    return out, snaps.height


def clear_output(path: Path) -> None:
    """Remove an earlier output file or folder of part files at ``path``."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_snapshot_meta(out: Path, key: dict, rows: int, plan: dict[str, dict],
                        treated: dict | None = None) -> Path:
    """``snapshots.json``: what the snapshots were built from (``key``), their rows, the
    sampling plan (rows and kept share per stratum, and the share kept overall) and what
    ``treated.parquet`` holds (:func:`treated_plan` and its ``rows``; None: no file)."""
    meta = {**key, "rows": rows, "sampled_share": kept_share(plan), "strata": plan,
            "treated": treated}
    path = out / SNAPSHOT_META
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def load_snapshots(folder: str | Path, tables: Tables | ScannedTables, params: Params,
                   as_of: dt.date | None = None) -> pl.DataFrame:
    """The snapshots :func:`save_snapshots` (one ``snapshots.parquet`` file) or
    ``features --engine spark`` (a ``snapshots.parquet/`` folder of part files, read in name
    order) wrote, after checking they were built from these tables (as known on ``as_of``:
    already cut with :func:`cut_tables`) with these settings (a clear :class:`InputError`
    otherwise)."""
    folder = Path(folder)
    meta_path, data_path = folder / SNAPSHOT_META, folder / SNAPSHOT_FILE
    if not meta_path.is_file() or not data_path.exists():
        raise InputError(f"{folder}: no {SNAPSHOT_FILE} + {SNAPSHOT_META} "
                         "(build them with: paycadence features --data DIR --out DIR)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_path}: unreadable ({exc})") from None
    want = snapshot_key(fingerprint(tables), params, as_of)
    differ = [k for k, v in want.items() if meta.get(k) != v]
    if differ:
        raise InputError(f"{folder}: snapshots were built from other "
                         f"{', '.join(differ)} than this training run; rebuild them with "
                         "paycadence features")
    try:
        # a folder of part files (--engine spark) is read in name order: sorted as one file is
        snaps = pl.read_parquet(sorted(data_path.glob("*.parquet")) if data_path.is_dir()
                                else data_path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{data_path}: unreadable ({exc})") from None
    missing = [c for c in (*FEATURES, *LABELS.values(), "as_of") if c not in snaps.columns]
    if missing or snaps.height != meta.get("rows"):
        raise InputError(f"{data_path}: not the snapshots {SNAPSHOT_META} describes "
                         f"(missing columns: {', '.join(missing) or 'none'})")
    return snaps


def load_treated(folder: str | Path, *, before: dt.date, data_end: dt.date
                 ) -> pl.DataFrame | None:
    """The treated rows saved beside snapshots that :func:`load_snapshots` has accepted
    (``treated.parquet``: a file, or a folder of part files read in name order), when they
    are those of days before ``before`` labelled to ``data_end``; None when there are none
    or they were built for another split (``train.holdout_share`` or ``embargo_days``
    changed since): then ``train`` builds them itself."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / SNAPSHOT_META).read_text(encoding="utf-8")).get("treated")
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder / SNAPSHOT_META}: unreadable ({exc})") from None
    if not meta or meta.get("before") != before.isoformat() or \
            meta.get("data_end") != data_end.isoformat():
        logger.warning("%s: no treated rows before %s saved (%s): building them", folder, before,
                    f"saved before {meta.get('before')}" if meta else "none")
        return None
    if meta["rows"] == 0:
        return pl.DataFrame()
    path = folder / TREATED_FILE
    try:
        rows = pl.read_parquet(sorted(path.glob("*.parquet")) if path.is_dir() else path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    missing = [c for c in (*FEATURES, "action", "propensity", "sampled_share")
               if c not in rows.columns]
    if missing or rows.height != meta["rows"]:
        raise InputError(f"{path}: not the treated rows {SNAPSHOT_META} describes "
                         f"(missing columns: {', '.join(missing) or 'none'}); rebuild them "
                         "with paycadence features")
    return rows


def acted_keys(tables: Tables | ScannedTables, before: dt.date) -> pl.DataFrame:
    """``invoice_id`` and ``as_of`` of every logged action before ``before``: the snapshot
    rows that were not waited, when the treated rows are a sample (a lazy query of two
    columns of the actions table: scanned tables are not read whole)."""
    return tables.actions.lazy().filter(pl.col("sent_on") < before).select(
        "invoice_id", as_of="sent_on").unique().collect(engine="streaming")


def fit_models(tables: Tables, params: Params) -> RiskModels:
    """Fit the forecasts and the response model on a whole history, without a holdout or
    MLflow (the backtest's learnt policy; ``train`` is the tracked, gated way)."""
    snaps, last = snapshots(tables, params)
    treated = treated_rows(tables, before=last + dt.timedelta(days=1),
                           horizon_days=params.train.horizon_days, data_end=last)
    return fit(snaps, params, treated)


#: Boosting stops when the later days' log-loss has not improved for this many rounds.
EARLY_STOPPING_ROUNDS = 30


def treated_rows(tables: Tables, *, before: dt.date, horizon_days: int,
                 data_end: dt.date, share: float = 1.0, seed: int = 0) -> pl.DataFrame:
    """Labelled feature rows of every (invoice, day) on which a logged action named the
    invoice, for days before ``before``: the treated rows of the response model (the day's
    action, its logged propensity, the features as of that morning). Two actions on one
    invoice on one day count as the stronger one (:data:`paycadence.models.policy.STRENGTH`),
    whatever the order of the rows, so every engine and bucketing keeps the same one.

    With ``share`` below 1, an (invoice, day) pair is kept when a hash of its invoice id and
    day (with ``seed``) falls below ``share``: the same draw whatever else is in the tables
    (a hash bucket of debtors or the whole book). Every row carries ``sampled_share``.
    """
    acts = tables.actions.filter(pl.col("sent_on") < before).select(
        "invoice_id", as_of="sent_on", action="channel",
        propensity=pl.col("propensity") if "propensity" in tables.actions.columns
        else pl.lit(None, dtype=pl.Float64),
    ).with_columns(strength=pl.col("action").replace_strict(STRENGTH, default=0)).sort(
        "invoice_id", "as_of", "strength", "action", descending=[False, False, True, False]
    ).unique(["invoice_id", "as_of"], keep="first", maintain_order=True).drop("strength")
    if share < 1.0 and acts.height:
        acts = acts.filter(pl.Series(_pair_draw(acts, seed) < np.uint64(share * 2.0**64)))
    if acts.height == 0:
        return pl.DataFrame()
    owners = tables.invoices.select("invoice_id", "debtor_id")
    points = acts.join(owners, on="invoice_id").select("debtor_id", "as_of").unique()
    frame = features_at(tables, points, max_days_past_due=horizon_days).collect()
    frame = frame.join(acts, on=["invoice_id", "as_of"], how="inner")
    if frame.height == 0:
        return pl.DataFrame()
    return label_snapshots(frame, tables, data_end=data_end, horizon_days=horizon_days
                           ).with_columns(sampled_share=pl.lit(share, dtype=pl.Float64))


def _pair_draw(acts: pl.DataFrame, seed: int) -> np.ndarray:
    """A uniform uint64 per (``invoice_id``, ``as_of``) row, fixed by ``seed``."""
    ordinal = acts["as_of"].to_physical().to_numpy().astype(np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = acts["invoice_id"].hash(seed=seed).to_numpy() ^ (ordinal * np.uint64(GOLDEN))
    return mix64(key)


def action_pairs(tables: Tables) -> dict[str, int]:
    """Per day (ISO), the logged (invoice, day) pairs of known invoices: what
    :func:`treated_rows` starts from. Hash buckets of debtors add up to the whole book's."""
    pairs = tables.actions.select("invoice_id", "sent_on").drop_nulls().unique().join(
        tables.invoices.select("invoice_id"), on="invoice_id", how="semi")
    return {day.isoformat(): int(n) for day, n in pairs.group_by("sent_on").len().iter_rows()}


def treated_plan(pairs: dict[str, int], *, before: dt.date, data_end: dt.date,
                 params: Params) -> dict:
    """What ``treated.parquet`` holds: the treated rows of days before ``before`` (labels to
    ``data_end``), the logged pairs they come from (``actions``) and the share kept: all of
    them up to ``features.max_snapshot_rows`` pairs, above it that many in expectation."""
    n = sum(v for day, v in pairs.items() if day < before.isoformat())
    cap = params.features.max_snapshot_rows
    return {"before": before.isoformat(), "data_end": data_end.isoformat(), "actions": n,
            "share": 1.0 if n <= cap else cap / n}


def treated_before(dates: list[dt.date], params: Params) -> dt.date | None:
    """The day ``train`` takes treated rows before: :func:`time_split`'s first held-out day
    minus ``train.embargo_days``, from the snapshot days (ascending, each once); None when
    they are too few to train on."""
    if len(dates) < 4:
        return None
    split = split_day(dates, holdout_share=params.train.holdout_share)
    return split - dt.timedelta(days=params.train.embargo_days)


def fit(train: pl.DataFrame, params: Params, treated: pl.DataFrame | None = None,
        acted: pl.DataFrame | None = None) -> RiskModels:
    """Fit the forecasts on labelled snapshots (censored rows left out per target).

    ``p_late``: a LightGBM classifier on all but the latest ``train.calibration_share`` of the
    training days, its number of trees chosen by early stopping on those latest days, then
    calibrated on them (none, Platt or isotonic, whichever has the lowest log-loss across
    their two halves). Settlement: the hazard model on person-period rows of every training
    snapshot (sampled above ``train.hazard_max_rows``), its number of trees chosen the same
    way and then refit on all training days. ``train.n_estimators`` is the upper bound.

    Snapshots of a stratified sample (``sampled_share`` differing between rows) weigh
    1 / share in every fit, so that each model learns the whole book's rates; the rows that
    stop boosting early and calibrate p_late are first thinned to one share
    (:func:`self_weighting`). Unsampled or uniformly sampled snapshots are fitted unweighted.
    Treated rows that are a sample (``sampled_share`` below 1) weigh 1 / share as well; they
    need ``acted``, the keys of every logged action (:func:`acted_keys`).
    """
    p = params.train
    kw = {"n_estimators": p.n_estimators, "learning_rate": p.learning_rate,
          "num_leaves": p.num_leaves, "min_child_samples": p.min_child_samples,
          "random_state": p.seed}
    late_rows = narrow(train, "y_late", "as_of").filter(pl.col("y_late").is_not_null())
    if late_rows.height == 0:
        raise InputError("no snapshot has a known 'y_late' label: the history is too short")
    days = late_rows["as_of"].unique().sort()
    cut = days[min(int(len(days) * (1 - p.calibration_share)), len(days) - 1)]
    fit_rows = late_rows.filter(pl.col("as_of") < cut)
    calib_rows = late_rows.filter(pl.col("as_of") >= cut)
    if fit_rows.height == 0 or len(days) < 3:
        fit_rows, calib_rows = late_rows, late_rows.clear()
    stop = {"early_stopping_rounds": EARLY_STOPPING_ROUNDS}
    calib_rows = self_weighting(calib_rows, seed=p.seed)
    calib_X = feature_frame(calib_rows) if calib_rows.height else None
    late = LateRiskModel(**kw, **stop, max_depth=p.late_max_depth).fit(
        feature_frame(fit_rows), fit_rows["y_late"].to_numpy(),
        sample_weight=sample_weights(fit_rows) if weighted(train) else None,
        eval_set=(calib_X, calib_rows["y_late"].to_numpy()) if calib_rows.height else None)
    del late_rows, fit_rows  # each fit's rows are freed once it is made
    calibrator = Calibrator()
    if calib_rows.height:
        raw = late.predict_proba(calib_X)[:, 1]
        calibrator = calibration.choose(raw, calib_rows["y_late"].to_numpy(),
                                        calib_rows["as_of"].to_physical().to_numpy())
    del calib_X
    # the settlement model: rounds chosen on the same split of days, then refit on all days
    columns = [*FEATURES, *BIN_FEATURES]
    periods = narrow(train, "as_of", "t_settle", "t_observed")
    scale = weighted(train)
    later = periods.filter(pl.col("as_of") >= cut)
    X_a, y_a, w_a = hazard_rows(periods.filter(pl.col("as_of") < cut),
                                max_rows=p.hazard_max_rows, seed=p.seed, weights=scale)
    X_b, y_b, _ = hazard_rows(self_weighting(later, seed=p.seed) if scale else later,
                              max_rows=p.hazard_max_rows, seed=p.seed)
    del later
    rounds = _early_rounds(kw, columns, X_a, y_a, X_b, y_b, weight=w_a)
    del X_a, y_a, w_a, X_b, y_b
    X, y, w = hazard_rows(periods, max_rows=p.hazard_max_rows, seed=p.seed, weights=scale)
    del periods
    if y.size == 0:
        raise InputError("no snapshot was followed long enough to learn when invoices are paid")
    hazard = LateRiskModel(**(kw | {"n_estimators": rounds})).fit(frame_of(X, columns), y,
                                                                  sample_weight=w)
    del X, w
    response, card = None, {}
    if treated is not None and treated.height:
        response, card = fit_response(train, treated, cut, kw, acted)
    return RiskModels.from_estimators(
        FEATURES, late, hazard, response=response, calibrator=calibrator,
        card={"calibration_rows": calib_rows.height, "hazard_rows": int(y.size),
              "late_trees": int(late.best_iteration_), "hazard_trees": int(rounds), **card})


def _early_rounds(kw: dict, columns: list[str], X_a: np.ndarray, y_a: np.ndarray,
                  X_b: np.ndarray, y_b: np.ndarray, weight: np.ndarray | None = None) -> int:
    """Trees to keep: boosting on the earlier rows, stopped early on the later ones (the
    ``n_estimators`` bound when either side is empty or the later rows hold one class)."""
    if not (y_a.size and y_b.size and len(np.unique(y_b)) == 2):
        return kw["n_estimators"]
    return LateRiskModel(**kw, early_stopping_rounds=EARLY_STOPPING_ROUNDS).fit(
        frame_of(X_a, columns), y_a, sample_weight=weight,
        eval_set=(frame_of(X_b, columns), y_b)).best_iteration_


def treated_sampled(treated: pl.DataFrame) -> bool:
    """Whether treated rows are a sample of the logged actions (``sampled_share`` below 1)."""
    return "sampled_share" in treated.columns and bool((treated["sampled_share"] < 1).any())


def response_rows_weighted(train: pl.DataFrame, treated: pl.DataFrame,
                           acted: pl.DataFrame | None = None) -> pl.DataFrame:
    """:func:`paycadence.models.response.response_rows`, the rows of a sample weighted by
    1 / their share as well: the waited rows of a stratified sample of snapshots, and the
    treated rows when they are a sample of the logged actions (then the snapshot rows named
    by any logged action, ``acted``, are not waited rows, whether their treated row was kept
    or not)."""
    sampled = treated_sampled(treated)
    if not (weighted(train) or sampled):
        return response_rows(train, treated)
    if sampled:
        if acted is None:
            raise ValueError("a sample of treated rows needs the keys of every logged action")
        train = train.join(acted, on=["invoice_id", "as_of"], how="anti", maintain_order="left")
    parts = (train.group_by("sampled_share", maintain_order=True) if weighted(train)
             else [((1.0,), train)])
    waited = [response_rows(part, treated).filter(pl.col("action") == "wait").with_columns(
        pl.col("weight") / share) for (share,), part in parts]
    acts = [response_rows(train.clear(), part).with_columns(pl.col("weight") / share)
            for (share,), part in (treated.group_by("sampled_share", maintain_order=True)
                                   if sampled else [((1.0,), treated)])]
    return pl.concat([*waited, *acts], how="vertical_relaxed")


def fit_response(train: pl.DataFrame, treated: pl.DataFrame, cut: dt.date, kw: dict,
                 acted: pl.DataFrame | None = None):
    """The action-response model (:mod:`paycadence.models.response`): rounds chosen by early
    stopping on the days from ``cut`` on, then refit on all rows, inverse-propensity weighted
    (and inverse-share weighted, for a sample of snapshots or of treated rows)."""
    rows = response_rows_weighted(
        narrow(train, "invoice_id", "as_of", "t_settle", "t_observed"), treated, acted)
    if rows.height == 0 or rows["y"].n_unique() < 2:
        return None, {}
    columns = [*FEATURES, *ACTION_FEATURES]
    early, later = rows.filter(pl.col("as_of") < cut), rows.filter(pl.col("as_of") >= cut)
    rounds = _early_rounds(kw, columns, design(early), early["y"].to_numpy(), design(later),
                           later["y"].to_numpy(), weight=early["weight"].to_numpy())
    del early, later
    model = LateRiskModel(**(kw | {"n_estimators": rounds})).fit(
        frame_of(design(rows), columns), rows["y"].to_numpy(),
        sample_weight=rows["weight"].to_numpy())
    counts = rows.group_by("action").len()
    return model, {"response_trees": int(rounds), "response_rows": rows.height,
                   "response_rows_by_action": dict(counts.iter_rows())}


#: Stages of an invoice's life on the snapshot day, for p_late metrics per stage.
STAGES = {
    "new": pl.col("age_days") < 7,
    "before_due": pl.col("days_past_due") <= 0,
    "after_due": pl.col("days_past_due") > 0,
}


def predictions(models: RiskModels | None, holdout: pl.DataFrame) -> pl.DataFrame:
    """The holdout's labels beside the forecasts of ``models`` (None: the naive reference)."""
    pred = naive_forecast(holdout) if models is None else models.predict(holdout)
    return holdout.select(*LABELS.values(), "as_of", "open_amount", "t_settle", "t_observed",
                          stage=pl.struct(**STAGES)).with_columns(
        pred.select("p_late", "expected_days_late", "p_unpaid_90d", "cash_weeks"))


def evaluate(models: RiskModels | None, holdout: pl.DataFrame, prefix: str = "",
             horizon_days: int = 120) -> dict:
    """Holdout metrics of ``models`` (None: the naive reference).

    ``late_*`` and ``unpaid_*``: AUC, Brier, log-loss, ECE (and ``late_auc_<stage>``,
    ``late_ece_<stage>`` for invoices new, before and after due); ``days_mae``: days late,
    both sides capped at ``horizon_days`` as the labels are; ``cash_wape``: the weekly cash
    forecast of the held-out book against what came in (:func:`cash_error`).
    """
    frame = predictions(models, holdout).with_columns(
        pl.col("expected_days_late").clip(upper_bound=horizon_days))
    scale = weighted(holdout)
    frame = frame.with_columns(weight=pl.Series(sample_weights(holdout)) if scale else pl.lit(1.0))

    def w(rows: pl.DataFrame) -> np.ndarray | None:
        return rows["weight"].to_numpy() if scale else None

    out = {}
    for key, label, col in (("late", "y_late", "p_late"), ("unpaid", "y_unpaid_90d",
                                                             "p_unpaid_90d")):
        rows = frame.filter(pl.col(label).is_not_null())
        for name, value in M.binary_metrics(rows[label].to_numpy(), rows[col].to_numpy(),
                                            w(rows)).items():
            out[f"{prefix}{key}_{name}"] = value
    for stage in STAGES:
        rows = frame.filter(pl.col("y_late").is_not_null() & pl.col("stage").struct.field(stage))
        if rows.height:
            m = M.binary_metrics(rows["y_late"].to_numpy(), rows["p_late"].to_numpy(), w(rows))
            out |= {f"{prefix}late_auc_{stage}": m["auc"], f"{prefix}late_ece_{stage}": m["ece"],
                    f"{prefix}late_n_{stage}": m["n"]}
    rows = frame.filter(pl.col("y_days_late").is_not_null())
    for name, value in M.regression_metrics(rows["y_days_late"].to_numpy(),
                                            rows["expected_days_late"].to_numpy(),
                                            w(rows)).items():
        out[f"{prefix}days_{name}"] = value
    out[f"{prefix}cash_wape"] = cash_error(frame)
    return out


def cash_error(frame: pl.DataFrame) -> float:
    """Weighted absolute percentage error of the weekly cash forecast, over the snapshot days
    followed for all 13 weeks: Σ |forecast − received| / Σ received, per (day, week) of the
    held-out book (an invoice's open amount counts as received in the week it settled).
    With a ``weight`` column (a stratified sample) both sides are weighted sums: estimates of
    the whole book's."""
    weeks = CASH_WEEKS
    rows = frame.filter(pl.col("t_observed") >= 7 * weeks)
    if rows.height == 0:
        return float("nan")
    days = rows["as_of"].to_physical().to_numpy()
    day_ix = np.unique(days, return_inverse=True)[1]
    forecast = np.zeros((day_ix.max() + 1, weeks))
    cash = np.asarray(rows["cash_weeks"].to_list(), dtype=np.float64)
    amount = rows["open_amount"].to_numpy()
    if "weight" in rows.columns and rows["weight"].n_unique() > 1:
        weight = rows["weight"].to_numpy()
        cash, amount = cash * weight[:, None], amount * weight
    np.add.at(forecast, day_ix, cash)
    received = np.zeros_like(forecast)
    t = rows["t_settle"].fill_null(np.inf).to_numpy()
    inside = t < 7 * weeks
    np.add.at(received, (day_ix[inside], (t[inside] // 7).astype(int)), amount[inside])
    total = received.sum()
    return float(np.abs(forecast - received).sum() / total) if total > 0 else float("nan")


def _ope_sample(tables: Tables | ScannedTables, data_dir: str | None, split: dt.date,
                params: Params) -> OpeSample | None:
    """The holdout's logged decisions that ``train`` evaluates policies on: those of
    ``data_dir``'s decision log from ``split`` on, of at most ``train.ope_max_debtors``
    decided debtors (a hash sample of debtor ids), with the tables' rows about them (None:
    no log, or no decision in the period); see :func:`paycadence.training.bounded.ope_sample`.
    """
    from paycadence.training.ope import scan_decisions

    if data_dir is None or not any((Path(data_dir) / f"decisions.{e}").exists()
                                   for e in ("csv", "parquet")):
        return None
    return ope_sample(tables, scan_decisions(data_dir), since=split,
                      max_debtors=params.train.ope_max_debtors, seed=params.train.seed)


def _off_policy(sample: OpeSample | None, policy: Policy, models: RiskModels,
                prefix: str) -> dict:
    """Off-policy estimates of ``models``' policy on the logged decisions of ``sample``
    (none without a sample); see :mod:`paycadence.training.ope`."""
    from paycadence.training.ope import evaluate_policy

    if sample is None:
        return {}
    r = evaluate_policy(sample.tables, sample.decisions, policy, models)
    return {f"{prefix}logged": r.logged.value, f"{prefix}ips": r.ips.value,
            f"{prefix}snips": r.snips.value, f"{prefix}dr": r.dr.value,
            f"{prefix}dr_low": r.dr.low, f"{prefix}dr_high": r.dr.high,
            f"{prefix}decisions": float(r.decisions), f"{prefix}agreement": r.agreement,
            f"{prefix}debtors": float(sample.debtors)}


def _in_memory(tables: Tables | ScannedTables) -> Tables:
    """``tables`` as :class:`Tables`: scanned ones read whole, with a warning."""
    if not isinstance(tables, ScannedTables):
        return tables
    logger.warning("reading the whole tables of %s into memory (not bounded) to build the "
                   "treated rows of this split; rebuild the features with paycadence features "
                   "to bound it", tables.folder)
    return tables.collect()


def gate(scores: dict, champion: dict | None, params: Params) -> tuple[bool, str]:
    """Whether the new model becomes champion, and why: only when, on the same holdout, its
    p_late AUC is at least the champion's − ``gate_auc_tolerance`` and its Brier score at most
    the champion's + ``gate_brier_tolerance``."""
    if champion is None:
        return True, "first model (or none comparable): it becomes champion"
    auc, brier = champion["champion_late_auc"], champion["champion_late_brier"]
    if not (np.isfinite(auc) and np.isfinite(brier)):
        return True, "champion could not be scored on this holdout: the new model replaces it"
    t_auc, t_brier = params.train.gate_auc_tolerance, params.train.gate_brier_tolerance
    fails = []
    if scores["late_auc"] < auc - t_auc:
        fails.append(f"p_late AUC {scores['late_auc']:.4f} < champion's {auc:.4f} − {t_auc}")
    if scores["late_brier"] > brier + t_brier:
        fails.append(f"Brier {scores['late_brier']:.4f} > champion's {brier:.4f} + {t_brier}")
    if fails:
        return False, "; ".join(fails) + " on the same holdout: stays challenger"
    return True, (f"p_late AUC {scores['late_auc']:.4f} ≥ champion's {auc:.4f} − {t_auc} and "
                  f"Brier {scores['late_brier']:.4f} ≤ {brier:.4f} + {t_brier} on the same "
                  "holdout")


def train(
    tables: Tables | ScannedTables,
    *,
    params: Params,
    as_of: dt.date | None = None,
    data_dir: str | None = None,
    model_name: str = MODEL_NAME,
    policy: Policy | None = None,
    snapshot_dir: str | Path | None = None,
    progress: Callable[..., None] | None = None,
) -> TrainResult:
    """Build snapshots, fit, evaluate against the naive reference, log and register in MLflow.

    When ``data_dir`` holds a decision log (``decisions.csv``), the new model's policy is also
    evaluated off-policy on the logged decisions of the holdout period (``ope_*`` metrics),
    those of at most ``train.ope_max_debtors`` decided debtors (a hash sample of debtor ids:
    ``ope_debtors`` of ``ope_debtors_decided``, tag ``ope_sample``); with
    ``train.gate_ope_margin`` set, the champion is evaluated the same way, on the same
    decisions, and the new model is promoted only if its doubly robust value is not worse by
    more than that share.

    Parameters
    ----------
    tables
        Validated tables (from ingest or the simulator), or, with ``snapshot_dir``, clean
        tables scanned lazily (:class:`paycadence.training.bounded.ScannedTables`): then the
        tables are never held whole (unless the saved treated rows are of another split,
        below).
    as_of
        Train as if on the morning of this date (default: the day after the last data).
    data_dir
        Where the tables came from, recorded with the run.
    snapshot_dir
        Snapshots built beforehand by :func:`save_snapshots` or ``features --engine spark``
        from the same tables and settings (checked), instead of building them here; only
        they are read (a stratified sample above ``features.max_snapshot_rows``, its rows
        weighted by 1 / ``sampled_share``), and the response model's treated rows saved
        beside them when they were built for this split (:func:`load_treated`; else they are
        built here from the whole tables, read into memory with a warning when they were
        scanned).
    progress
        ``progress(what, done, total)`` hears each phase.
    """
    import mlflow
    from mlflow.models import infer_signature

    if isinstance(tables, ScannedTables) and snapshot_dir is None:
        raise ValueError("scanned tables train only on saved snapshots (snapshot_dir)")
    phases = 6
    step = progress or (lambda what, done=None, total=None: None)
    step("building point-in-time snapshots" if snapshot_dir is None else "reading snapshots",
         0, phases)
    if as_of is not None:
        tables = cut_tables(tables, as_of)
    if snapshot_dir is None:
        snaps, last = snapshots(tables, params)
    else:
        snaps, last = load_snapshots(snapshot_dir, tables, params, as_of), tables.last_date
    train_rows, holdout, split = time_split(
        snaps, holdout_share=params.train.holdout_share, embargo_days=params.train.embargo_days)
    share = float(snaps.height / (1.0 / snaps["sampled_share"]).sum())
    del snaps  # its training and held-out rows are copies
    logger.info("snapshots: %d train, %d holdout, split at %s (%.1f%% of debtor-days kept)",
                train_rows.height, holdout.height, split, 100 * share)
    before = split - dt.timedelta(days=params.train.embargo_days)
    treated = None if snapshot_dir is None else load_treated(snapshot_dir, before=before,
                                                             data_end=last)
    if treated is None:
        treated = treated_rows(_in_memory(tables), before=before,
                               horizon_days=params.train.horizon_days, data_end=last)
    acted = acted_keys(tables, before) if treated_sampled(treated) else None
    step(f"fitting LightGBM on {train_rows.height:,} snapshots", 1, phases)
    models = fit(train_rows, params, treated, acted)
    n_train = train_rows.height
    del train_rows, treated, acted  # the holdout is all that is scored from here on
    h = params.train.horizon_days
    step(f"scoring {holdout.height:,} holdout snapshots against the naive reference", 2, phases)
    scores = {**evaluate(models, holdout, horizon_days=h),
              **evaluate(None, holdout, prefix="naive_", horizon_days=h)}

    step("comparing with the champion", 3, phases)
    client = tracking.setup()
    champion = tracking.alias_version(client, model_name, "champion")
    champ = None
    if champion is not None:
        try:
            path, _ = tracking.download_model(model_name, "champion")
            current = RiskModels.load(path)
            if current.features == models.features:
                champ = evaluate(current, holdout, prefix="champion_", horizon_days=h)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("champion %s could not be evaluated: %s", champion.version, exc)
    promote, why = gate(scores, champ, params)
    step("off-policy evaluation on the holdout's logged decisions", 4, phases)
    sample = _ope_sample(tables, data_dir, split, params)
    ope_scores = _off_policy(sample, policy or Policy(), models, "ope_")
    if sample is not None:
        ope_scores["ope_debtors_decided"] = float(sample.decided)
    scores |= ope_scores
    margin = params.train.gate_ope_margin
    if promote and champ is not None and margin is not None and ope_scores:
        theirs = _off_policy(sample, policy or Policy(), current, "champion_ope_")
        scores |= theirs
        floor = theirs["champion_ope_dr"] - margin * abs(theirs["champion_ope_dr"])
        if scores["ope_dr"] < floor:
            promote = False
            why = (f"off-policy value {scores['ope_dr']:.2f} per decision < champion's "
                   f"{theirs['champion_ope_dr']:.2f} − {margin:.0%}: stays challenger")
        else:
            why += (f"; off-policy value {scores['ope_dr']:.2f} ≥ champion's "
                    f"{theirs['champion_ope_dr']:.2f} − {margin:.0%}")
    if champ is not None:
        scores |= {f"champion_{k}": champ[f"champion_{k}"] for k in ("late_auc", "late_brier")}

    card = {"trained_at_as_of": (as_of or last + dt.timedelta(days=1)).isoformat(),
            "split_date": split.isoformat(), "horizon_days": params.train.horizon_days}
    models.card.update(card)
    step("logging the run and registering the model in MLflow", 5, phases)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({f"train.{k}": v for k, v in params.train.model_dump().items()})
        mlflow.log_params({f"features.{k}": v for k, v in params.features.model_dump().items()})
        mlflow.log_metrics({k: float(v) for k, v in scores.items() if np.isfinite(v)})
        mlflow.set_tags({"data_fingerprint": fingerprint(tables), "code_version": code_version(),
                         "data_dir": str(Path(data_dir).resolve()) if data_dir else "",
                         "split_date": split.isoformat(),
                         "train_rows": str(n_train),
                         "holdout_rows": str(holdout.height),
                         "snapshot_share": f"{share:.6f}"})
        if sample is not None:
            mlflow.set_tag("ope_sample", (
                f"{sample.debtors} of {sample.decided} decided debtors (hash sample, "
                "train.ope_max_debtors)" if sample.sampled else
                f"all {sample.decided} decided debtors"))
        mlflow.log_dict({"features": list(models.features)}, "features.json")
        mlflow.set_tag("calibration", models.calibrator.method)
        mlflow.log_dict(models.calibrator.to_dict(), "calibration.json")
        frame = predictions(models, holdout)
        naive = predictions(None, holdout)
        reliability = plots.reliability_table(frame, naive)
        mlflow.log_text(reliability.write_csv(), "calibration.csv")
        for fig, name in ((plots.calibration(frame, naive), "calibration.png"),
                          (plots.shap_summary(models, holdout, seed=params.train.seed),
                           "shap_summary.png")):
            mlflow.log_figure(fig, name)
            plots.close(fig)
        risk_dir = models.save(Path(tmp) / "risk")
        example = holdout.select(FEATURES).head(5).to_pandas()
        out = models.predict(holdout.head(5)).select(
            "p_late", "expected_days_late", "p_unpaid_90d").to_pandas()
        info = mlflow.pyfunc.log_model(
            name="risk", python_model=find_spec("paycadence.models.pyfunc").origin,
            artifacts={"risk": str(risk_dir)},
            signature=infer_signature(example, out), input_example=example,
            registered_model_name=model_name,
        )
        version = str(info.registered_model_version)
        alias = "champion" if promote else "challenger"
        client.set_registered_model_alias(model_name, alias, version)
        for key in ("late_auc", "late_brier", "late_ece", "days_mae", "unpaid_auc"):
            client.set_model_version_tag(model_name, version, key, f"{scores[key]:.6f}")
        client.set_model_version_tag(model_name, version, "promotion", why)
        mlflow.set_tag("promotion", why)
        mlflow.log_text(json.dumps(scores, indent=2), "metrics.json")
        run_id = run.info.run_id
    logger.info("registered %s version %s as %s: %s", model_name, version, alias, why)
    return TrainResult(run_id, version, alias, why, scores, n_train, holdout.height,
                       split, models, reliability)

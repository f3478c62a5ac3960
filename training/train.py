"""Train, evaluate and register the risk forecasts, tracked in MLflow.

:func:`train` builds labelled snapshots from the history, splits them by time (train on the
past, hold out the most recent snapshots, with an embargo between), fits the three LightGBM
models, compares them with the naive reference on the holdout, and registers the result. The
new version becomes ``champion`` only when it is at least as good as the current champion on
this same holdout; otherwise it is ``challenger`` and the result says why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import polars as pl

from paycadence import __version__
from paycadence.config import Params
from paycadence.data import COLUMNS, TABLE_NAMES, Tables, known_as_of
from paycadence.errors import InputError
from paycadence.features import FEATURES, build_snapshots, snapshot_dates
from paycadence.models import DaysLateModel, LateRiskModel, RiskModels, naive_forecast
from paycadence.training import metrics as M
from paycadence.training import tracking

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


def cut_tables(tables: Tables, as_of: dt.date) -> Tables:
    """Only what was known on the morning of ``as_of`` (train as if it were that day)."""
    out = {"debtors": tables.debtors}
    for name in TABLE_NAMES[1:]:
        out[name] = known_as_of(getattr(tables, name), as_of, table=name)
    return Tables(**out)


def fingerprint(tables: Tables) -> str:
    """A short, order-independent digest of the tables' contract columns."""
    digest = hashlib.sha256()
    for name, frame in tables.items():
        hashed = frame.select(list(COLUMNS[name]))
        value = int(hashed.hash_rows(seed=0).sum()) if \
            hashed.height else 0
        digest.update(f"{name}:{frame.height}:{value};".encode())
    return digest.hexdigest()[:16]


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def time_split(snaps: pl.DataFrame, *, holdout_share: float, embargo_days: int):
    """Split snapshots by date: the last ``holdout_share`` of dates held out, an embargo before."""
    dates = snaps["as_of"].unique().sort().to_list()
    if len(dates) < 4:
        raise InputError(
            f"too little history to train: {len(dates)} snapshot dates; simulate or export at "
            "least six months of invoices"
        )
    split = dates[min(int(len(dates) * (1 - holdout_share)), len(dates) - 1)]
    train = snaps.filter(pl.col("as_of") < split - dt.timedelta(days=embargo_days))
    holdout = snaps.filter(pl.col("as_of") >= split)
    if train.height == 0:
        train = snaps.filter(pl.col("as_of") < split)
    return train, holdout, split


def fit(train: pl.DataFrame, params: Params) -> RiskModels:
    """Fit the three forecasts on labelled snapshots (censored rows left out per target)."""
    p = params.train
    kw = {"n_estimators": p.n_estimators, "learning_rate": p.learning_rate,
          "num_leaves": p.num_leaves, "min_child_samples": p.min_child_samples,
          "random_state": p.seed}
    fitted = {}
    for key, label in LABELS.items():
        rows = train.filter(pl.col(label).is_not_null())
        if rows.height == 0:
            raise InputError(f"no snapshot has a known '{label}' label: the history is too short")
        X = rows.select(FEATURES).to_pandas()
        y = rows[label].to_numpy()
        est = DaysLateModel(**kw) if key == "days" else LateRiskModel(**kw)
        fitted[key] = est.fit(X, y)
    return RiskModels.from_estimators(FEATURES, fitted["late"], fitted["days"], fitted["unpaid"])


def evaluate(models: RiskModels | None, holdout: pl.DataFrame, prefix: str = "",
             horizon_days: int = 120) -> dict:
    """Holdout metrics of ``models`` (None: the naive reference) for the three targets.

    Days late are compared with both sides capped at ``horizon_days``, as the labels are.
    """
    pred = naive_forecast(holdout) if models is None else models.predict(holdout)
    pred = pred.with_columns(pl.col("expected_days_late").clip(upper_bound=horizon_days))
    frame = holdout.select(*LABELS.values()).with_columns(
        pred.select("p_late", "expected_days_late", "p_unpaid_90d"))
    out = {}
    for key, label, col in (("late", "y_late", "p_late"), ("unpaid", "y_unpaid_90d",
                                                             "p_unpaid_90d")):
        rows = frame.filter(pl.col(label).is_not_null())
        for name, value in M.binary_metrics(rows[label].to_numpy(), rows[col].to_numpy()).items():
            out[f"{prefix}{key}_{name}"] = value
    rows = frame.filter(pl.col("y_days_late").is_not_null())
    for name, value in M.regression_metrics(rows["y_days_late"].to_numpy(),
                                            rows["expected_days_late"].to_numpy()).items():
        out[f"{prefix}days_{name}"] = value
    return out


def train(
    tables: Tables,
    *,
    params: Params,
    as_of: dt.date | None = None,
    data_dir: str | None = None,
    model_name: str = MODEL_NAME,
) -> TrainResult:
    """Build snapshots, fit, evaluate against the naive reference, log and register in MLflow.

    Parameters
    ----------
    tables
        Validated tables (from ingest or the simulator).
    as_of
        Train as if on the morning of this date (default: the day after the last data).
    data_dir
        Where the tables came from, recorded with the run.
    """
    import mlflow
    from mlflow.models import infer_signature

    if as_of is not None:
        tables = cut_tables(tables, as_of)
    last = tables.last_date
    if last is None:
        raise InputError("no invoices to train on")
    dates = snapshot_dates(tables, every_days=params.features.snapshot_every_days,
                           min_history_days=params.features.min_history_days)
    snaps = build_snapshots(tables, dates, horizon_days=params.train.horizon_days, data_end=last,
                            max_rows=params.features.max_snapshot_rows,
                            seed=params.features.snapshot_seed)
    if snaps.height == 0:
        raise InputError("no open invoice on any snapshot date: nothing to learn from")
    train_rows, holdout, split = time_split(
        snaps, holdout_share=params.train.holdout_share, embargo_days=params.train.embargo_days)
    share = float(snaps["sampled_share"][0])
    logger.info("snapshots: %d train, %d holdout, split at %s (%.1f%% of debtor-days kept)",
                train_rows.height, holdout.height, split, 100 * share)
    models = fit(train_rows, params)
    h = params.train.horizon_days
    scores = {**evaluate(models, holdout, horizon_days=h),
              **evaluate(None, holdout, prefix="naive_", horizon_days=h)}

    client = tracking.setup()
    champion = tracking.alias_version(client, model_name, "champion")
    champion_auc, why = None, "first model: it becomes champion"
    if champion is not None:
        try:
            path, _ = tracking.download_model(model_name, "champion")
            current = RiskModels.load(path)
            if current.features == models.features:
                champion_auc = evaluate(current, holdout, prefix="champion_",
                                        horizon_days=h)["champion_late_auc"]
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("champion %s could not be evaluated: %s", champion.version, exc)
    gate = params.train.gate_auc_tolerance
    if champion is not None:
        if champion_auc is None or np.isnan(champion_auc):
            why = "champion could not be scored on this holdout: the new model replaces it"
        elif scores["late_auc"] >= champion_auc - gate:
            why = (f"p_late AUC {scores['late_auc']:.4f} ≥ champion's {champion_auc:.4f} "
                   f"− {gate} on the same holdout")
        else:
            why = (f"p_late AUC {scores['late_auc']:.4f} < champion's {champion_auc:.4f} − {gate} "
                   "on the same holdout: stays challenger")
    promote = champion is None or champion_auc is None or np.isnan(champion_auc) or \
        scores["late_auc"] >= champion_auc - gate
    if champion_auc is not None:
        scores["champion_late_auc"] = champion_auc

    card = {"trained_at_as_of": (as_of or last + dt.timedelta(days=1)).isoformat(),
            "split_date": split.isoformat(), "horizon_days": params.train.horizon_days}
    models.card.update(card)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({f"train.{k}": v for k, v in params.train.model_dump().items()})
        mlflow.log_params({f"features.{k}": v for k, v in params.features.model_dump().items()})
        mlflow.log_metrics({k: float(v) for k, v in scores.items() if np.isfinite(v)})
        mlflow.set_tags({"data_fingerprint": fingerprint(tables), "code_version": code_version(),
                         "data_dir": str(Path(data_dir).resolve()) if data_dir else "",
                         "split_date": split.isoformat(),
                         "train_rows": str(train_rows.height),
                         "holdout_rows": str(holdout.height),
                         "snapshot_share": f"{share:.6f}"})
        mlflow.log_dict({"features": list(models.features)}, "features.json")
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
        for key in ("late_auc", "late_brier", "days_mae", "unpaid_auc"):
            client.set_model_version_tag(model_name, version, key, f"{scores[key]:.6f}")
        client.set_model_version_tag(model_name, version, "promotion", why)
        mlflow.set_tag("promotion", why)
        mlflow.log_text(json.dumps(scores, indent=2), "metrics.json")
        run_id = run.info.run_id
    logger.info("registered %s version %s as %s: %s", model_name, version, alias, why)
    return TrainResult(run_id, version, alias, why, scores, train_rows.height, holdout.height,
                       split, models)

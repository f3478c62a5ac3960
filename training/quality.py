"""How good the deployed forecasts are, for the manager's report: what MLflow recorded about
the champion (holdout metrics beside the strongest simple reference, the calibration figure),
the latest backtest run if one was logged, and a calibration check on the report's own recent
history.

Nothing here raises on a missing or unreachable store: the report says what is not available.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from paycadence.data import Tables
from paycadence.features import build_snapshots
from paycadence.models import RiskModels
from paycadence.redact import redact
from paycadence.training import metrics as M
from paycadence.training import tracking
from paycadence.training.evaluation import predictions
from paycadence.training.references import best, book_prior, late_references
from paycadence.training.snapshots import cut_tables

logger = logging.getLogger(__name__)

#: The calibration check scores the invoices open every CHECK_EVERY_DAYS days over the last
#: CHECK_DAYS days before the report date (outcomes read up to the day before it).
CHECK_EVERY_DAYS = 14
CHECK_DAYS = 182
BINS = 10


@dataclass(frozen=True)
class ChampionInfo:
    """What the registry says about ``name@alias``: its version, run, holdout metrics (model,
    ``naive_*`` and ``ref_*`` references), run tags, the logged calibration figure (PNG bytes)
    and the version's own tags (holdout metrics, off-policy values, why it got its alias)."""

    found: bool
    detail: str
    version: str | None = None
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    calibration_png: bytes | None = None
    version_tags: dict[str, str] = field(default_factory=dict)

    @property
    def promotion(self) -> str:
        """Why this version holds the alias: the version's ``promotion`` tag (it says so when
        the alias was moved by hand), else the run's."""
        return self.version_tags.get("promotion") or self.tags.get("promotion", "")

    @property
    def split_date(self) -> dt.date | None:
        """First day of the champion's holdout: it learnt from nothing on or after it."""
        text = self.tags.get("split_date")
        return dt.date.fromisoformat(text) if text else None


def champion_info(model_name: str, alias: str) -> ChampionInfo:
    """The champion's record in MLflow, or ``found=False`` with the reason in ``detail``."""
    from mlflow.exceptions import MlflowException

    try:
        client = tracking.setup()
        version = tracking.alias_version(client, model_name, alias)
        if version is None:
            return ChampionInfo(False, f"no model {model_name}@{alias} in "
                                       f"{redact(tracking.tracking_uri())}")
        run = client.get_run(version.run_id) if version.run_id else None
    except (MlflowException, OSError) as exc:
        return ChampionInfo(False, f"model registry not readable: {redact(exc)}")
    version_tags = dict(version.tags or {})
    if run is None:
        return ChampionInfo(True, f"{model_name}@{alias} = version {version.version} (no run)",
                            str(version.version), version_tags=version_tags)
    png = _artifact(run.info.run_id, "calibration.png")
    return ChampionInfo(True, f"{model_name}@{alias} = version {version.version}",
                        str(version.version), run.info.run_id, dict(run.data.metrics),
                        dict(run.data.tags), png, version_tags)


def _artifact(run_id: str, path: str) -> bytes | None:
    """One logged artifact's bytes, or None when it is absent or unreadable."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=tmp,
                tracking_uri=tracking.tracking_uri())
            return Path(local).read_bytes()
    except (MlflowException, OSError) as exc:
        logger.info("artifact %s of run %s not available: %s", path, run_id, exc)
        return None


@dataclass(frozen=True)
class BacktestRun:
    """The latest backtest run logged in MLflow: its metrics, params and figures."""

    run_id: str
    experiment: str
    started: dt.datetime
    metrics: dict[str, float]
    params: dict[str, str]
    figures: dict[str, bytes]


def latest_backtest() -> BacktestRun | None:
    """The most recent run that is a backtest (its run name, its ``kind`` tag or its
    experiment's name says ``backtest``), or None when the store has none."""
    from mlflow.exceptions import MlflowException

    try:
        client = tracking.setup()
        names = {e.experiment_id: e.name for e in client.search_experiments()}
        found = []
        for where in ("attributes.run_name ILIKE '%backtest%'", "tags.kind = 'backtest'"):
            found += client.search_runs(list(names), filter_string=where, max_results=1,
                                        order_by=["attributes.start_time DESC"])
        named = [k for k, v in names.items() if "backtest" in v.lower()]
        if named:
            found += client.search_runs(named, max_results=1,
                                        order_by=["attributes.start_time DESC"])
    except (MlflowException, OSError) as exc:
        logger.info("backtest runs not readable: %s", exc)
        return None
    if not found:
        return None
    run = max(found, key=lambda r: r.info.start_time)
    try:
        paths = [a.path for a in client.list_artifacts(run.info.run_id)]
    except (MlflowException, OSError):
        paths = []
    figures = {p: b for p in paths if p.lower().endswith(".png")
               and (b := _artifact(run.info.run_id, p)) is not None}
    return BacktestRun(run.info.run_id, names.get(run.info.experiment_id, ""),
                       dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC),
                       dict(run.data.metrics), dict(run.data.params), figures)


@dataclass(frozen=True)
class CalibrationCheck:
    """``p_late`` against what happened, on invoices not yet due on recent days of the
    report's data (``p_late``'s contract meaning: settled after the due date).

    ``bins`` has one row per forecast tenth with invoices in it: ``forecast`` (their mean
    ``p_late``), ``observed`` (the share paid late), ``n``, and ``who`` (``model`` or
    ``reference``); ``scores`` maps ``model``/``reference`` to :func:`binary_metrics` of
    ``p_late``; ``reference`` names the simple reference with the best AUC on these rows
    (:mod:`paycadence.training.references`, priors from the history before the first day).
    """

    days: tuple[dt.date, ...]
    rows: int
    bins: pl.DataFrame
    scores: dict[str, dict[str, float]]
    reference: str = ""


def check_days(as_of: dt.date, not_before: dt.date | None = None) -> list[dt.date]:
    """The days the calibration check scores: every :data:`CHECK_EVERY_DAYS` days back from
    ``as_of`` over :data:`CHECK_DAYS` days, none before ``not_before`` (e.g. the model's
    holdout split, so that it is never scored on days it learnt from)."""
    days = [as_of - dt.timedelta(days=k) for k in range(CHECK_EVERY_DAYS, CHECK_DAYS + 1,
                                                       CHECK_EVERY_DAYS)]
    return sorted(d for d in days if not_before is None or d >= not_before)


def calibration_check(tables: Tables, models: RiskModels | None, *, as_of: dt.date,
                      horizon_days: int, not_before: dt.date | None = None
                      ) -> CalibrationCheck | None:
    """Score ``p_late`` of ``models`` (None: the references only) and of the best simple
    reference on the invoices not yet due on each of :func:`check_days`, with the history
    known on ``as_of``; labels as in training (:func:`paycadence.features.label`), censored
    invoices left out. None when no labelled invoice is left."""
    days = check_days(as_of, not_before)
    if not days:
        return None
    known = cut_tables(tables, as_of)
    snaps = build_snapshots(known, days, horizon_days=horizon_days,
                            data_end=as_of - dt.timedelta(days=1))
    if snaps.height == 0:
        return None
    snaps = snaps.filter(pl.col("y_late").is_not_null() & (pl.col("days_past_due") <= 0))
    if snaps.height == 0:
        return None
    y = snaps["y_late"].to_numpy()
    refs = late_references(snaps, book_prior(known, days[0]))
    name, _ = best({k: M.binary_metrics(y, p)["auc"] for k, p in refs.items()})
    who = {"reference": refs[name or "laplace"]}
    if models is not None:
        who = {"model": predictions(models, snaps)["p_late"].to_numpy(), **who}
    parts, scores = [], {}
    for key, p in who.items():
        scores[key] = M.binary_metrics(y, p)
        parts.append(reliability(y, p).with_columns(who=pl.lit(key)))
    return CalibrationCheck(tuple(days), snaps.height, pl.concat(parts), scores,
                            name or "laplace")


def reliability(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> pl.DataFrame:
    """Per forecast bin of equal width (the last one closed): ``forecast`` (mean forecast),
    ``observed`` (share of outcomes 1) and ``n``; empty bins are left out."""
    idx = np.minimum((np.asarray(p, float) * bins).astype(int), bins - 1)
    frame = pl.DataFrame({"bin": idx, "y": np.asarray(y, float), "p": np.asarray(p, float)})
    return frame.group_by("bin").agg(forecast=pl.col("p").mean(), observed=pl.col("y").mean(),
                                     n=pl.len()).sort("bin").drop("bin")

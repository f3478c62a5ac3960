"""Train, evaluate and register the risk forecasts, tracked in MLflow.

:func:`train` builds labelled snapshots from the history, splits them by time (train on the
past, hold out the most recent snapshots, with an embargo between), fits the calibrated
late-payment model and the settlement-hazard model, compares them with the simple references on
the holdout (the naive one and the strongest, :mod:`paycadence.training.references`), and
registers the result. The new version becomes ``champion`` only when it is at
least as good as the current champion on this same holdout (:func:`gate`): its forecasts, and,
when the holdout period has logged decisions with propensities, the lower bound of its policy's
doubly robust value per decision on them; otherwise it is ``challenger`` and the result says
why.

The parts live beside it: snapshots and the response model's treated rows in
:mod:`paycadence.training.snapshots`, the fit in :mod:`paycadence.training.fitting`, the holdout
metrics in :mod:`paycadence.training.evaluation`; their names are re-exported here, so
``from paycadence.training.train import ...`` keeps working.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from paycadence import __version__
from paycadence.books import (
    check_champion_book,
    derived_book,
)
from paycadence.config import Params, Policy
from paycadence.data import Tables
from paycadence.errors import PaycadenceError
from paycadence.features import FEATURES
from paycadence.models import RiskModels
from paycadence.training import plots, tracking
from paycadence.training.bounded import (
    OpeSample,
    ScannedTables,
    fingerprint_of,  # noqa: F401  (re-exported)
    ope_sample,
)
from paycadence.training.evaluation import (  # noqa: F401  (re-exported)
    STAGES,
    best_reference,
    cash_error,
    evaluate,
    predictions,
    reference_scores,
)
from paycadence.training.fitting import (  # noqa: F401  (re-exported)
    EARLY_STOPPING_ROUNDS,
    fit,
    fit_models,
    fit_response,
    response_rows_weighted,
    treated_sampled,
    value_rounds,
    with_value,
)
from paycadence.training.history import (
    check_holdout,
    fit_params,
    history_plan,
    history_tags,
    not_learnt,
)
from paycadence.training.lineage import book_tags, debtor_ids_of
from paycadence.training.references import book_prior
from paycadence.training.snapshots import (  # noqa: F401  (re-exported)
    LABELS,
    ROW_ORDER,
    SNAPSHOT_FILE,
    SNAPSHOT_META,
    TREATED_FILE,
    acted_keys,
    action_pairs,
    clear_output,
    cut_tables,
    embargo_of,
    fingerprint,
    fingerprint_parts,
    kept_share,
    load_snapshots,
    load_treated,
    sampling_plan,
    save_snapshots,
    snapshot_key,
    snapshots,
    split_day,
    time_split,
    treated_before,
    treated_plan,
    treated_rows,
    write_snapshot_meta,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "paycadence-risk"


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


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


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
            f"{prefix}gain": r.gain.value, f"{prefix}gain_low": r.gain.low,
            f"{prefix}gain_high": r.gain.high,
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


def _forecast_rule(scores: dict, champion: dict, params: Params) -> tuple[bool, str]:
    """The forecast-quality rule: p_late AUC at least the champion's − ``gate_auc_tolerance``
    and Brier score at most the champion's + ``gate_brier_tolerance``, on the same holdout."""
    auc, brier = champion["champion_late_auc"], champion["champion_late_brier"]
    t_auc, t_brier = params.train.gate_auc_tolerance, params.train.gate_brier_tolerance
    fails = []
    if scores["late_auc"] < auc - t_auc:
        fails.append(f"p_late AUC {scores['late_auc']:.4f} < champion's {auc:.4f} − {t_auc}")
    if scores["late_brier"] > brier + t_brier:
        fails.append(f"Brier {scores['late_brier']:.4f} > champion's {brier:.4f} + {t_brier}")
    if fails:
        return False, "; ".join(fails) + " on the same holdout"
    return True, (f"p_late AUC {scores['late_auc']:.4f} ≥ champion's {auc:.4f} − {t_auc} and "
                  f"Brier {scores['late_brier']:.4f} ≤ {brier:.4f} + {t_brier} on the same "
                  "holdout")


def _value_rule(scores: dict, champion: dict, params: Params) -> tuple[bool | None, str]:
    """The value rule: the lower bound of the new policy's doubly robust value per decision
    (95% bootstrap interval over debtors) on the holdout's logged decisions is at least the
    champion's on the same decisions, less ``gate_ope_margin`` × its size. None (with the
    reason) when it cannot apply."""
    margin = params.train.gate_ope_margin
    if margin is None:
        return None, "train.gate_ope_margin is null, the value rule is off"
    if "ope_dr_low" not in scores:
        return None, "no logged decisions with propensities in the holdout period"
    if "champion_ope_dr_low" not in champion:
        return None, "the champion's value could not be estimated on the holdout's decisions"
    mine, theirs = scores["ope_dr_low"], champion["champion_ope_dr_low"]
    if not (np.isfinite(mine) and np.isfinite(theirs)):
        return None, (f"doubly robust lower bounds not finite, {mine:.2f} and champion's "
                      f"{theirs:.2f}")
    floor = theirs - margin * abs(theirs)
    less = f" − {100 * margin:g}%" if margin else ""
    n = scores.get("ope_decisions", float("nan"))
    text = (f"doubly robust lower bound {mine:,.2f} {'≥' if mine >= floor else '<'} champion's "
            f"{theirs:,.2f}{less} per decision on the same {n:,.0f} holdout decisions")
    return bool(mine >= floor), text


def gate(scores: dict, champion: dict | None, params: Params) -> tuple[bool, str]:
    """Whether the new model becomes champion, and why (the message names the rule that
    decided).

    Two rules, on the same holdout as the champion (``scores`` has the new model's metrics,
    ``champion`` the champion's, prefixed ``champion_``):

    - **value**: when the holdout has logged decisions with propensities (``ope_dr_low`` and
      ``champion_ope_dr_low``), the lower bound of the new policy's doubly robust value per
      decision must be at least the champion's (less ``train.gate_ope_margin`` × its size;
      ``null`` turns the rule off);
    - **forecast**: its p_late AUC at least the champion's − ``gate_auc_tolerance`` and its
      Brier score at most the champion's + ``gate_brier_tolerance``.

    Both must hold; without logged decisions the forecast rule decides alone, and says so.
    With no comparable champion, or one that cannot be scored, the new model becomes champion.
    """
    if champion is None:
        return True, "first model (or none comparable): it becomes champion"
    auc, brier = champion["champion_late_auc"], champion["champion_late_brier"]
    if not (np.isfinite(auc) and np.isfinite(brier)):
        return True, "champion could not be scored on this holdout: the new model replaces it"
    forecast_ok, forecast = _forecast_rule(scores, champion, params)
    value_ok, value = _value_rule(scores, champion, params)
    if value_ok is None:
        verdict = "promoted" if forecast_ok else "stays challenger"
        return forecast_ok, f"{verdict} by the forecast rule alone ({value}): {forecast}"
    if value_ok and forecast_ok:
        return True, f"promoted by the value and forecast rules: {value}; {forecast}"
    if not (value_ok or forecast_ok):
        return False, f"stays challenger by the value and forecast rules: {value}; {forecast}"
    if not value_ok:
        return False, (f"stays challenger by the value rule: {value}; forecast rule holds: "
                       f"{forecast}")
    return False, f"stays challenger by the forecast rule: {forecast}; value rule holds: {value}"


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
    book: str | None = None,
    book_named: bool = False,
    allow_other_book: bool = False,
) -> TrainResult:
    """Build snapshots, fit, evaluate against the simple references (the naive one and the
    strongest: :mod:`paycadence.training.references`), log and register in MLflow.

    A history shorter than ``train.required_history_days`` is refused, saying how many more
    days it needs; a short one is snapshot and fit as :mod:`paycadence.training.history`
    plans, and its card's ``not_learnt`` (tag ``not_learnt``) says what it could not learn yet.

    The version records its book (``book``, else derived from ``data_dir``: paycadence.books),
    a sample of the book's debtors, the data's fingerprint, first and last day and rows. A
    champion of ``model_name`` trained on another book is not replaced (nor compared with):
    the run stops before fitting (:func:`paycadence.books.check_champion_book`; ``book_named``:
    the user named the book, compared by name) unless ``allow_other_book``.

    When ``data_dir`` holds a decision log (``decisions.csv``), the new model's policy is also
    evaluated off-policy on the logged decisions of the holdout period (``ope_*`` metrics),
    those of at most ``train.ope_max_debtors`` decided debtors (a hash sample of debtor ids:
    ``ope_debtors`` of ``ope_debtors_decided``, tag ``ope_sample``). The champion is evaluated
    the same way, on the same decisions (``champion_ope_*``), and, with
    ``train.gate_ope_margin`` set, the new model is promoted only if the lower bound of its
    doubly robust value is at least the champion's (:func:`gate`). Both estimates are recorded
    on the run (metrics) and on the new version (tags :data:`tracking.VALUE_TAGS`, and
    ``champion_version``: the version it was compared with).

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
    book = book or (derived_book(data_dir) if data_dir else None)
    debtor_ids = debtor_ids_of(tables)
    held = tracking.alias_version(tracking.setup(), model_name, "champion")
    if held is not None:
        check_champion_book(dict(held.tags or {}), book=book, named=book_named,
                            debtor_ids=debtor_ids, allow=allow_other_book,
                            what=f"the champion {model_name} version {held.version}")
    phases = 6
    step = progress or (lambda what, done=None, total=None: None)
    step("building point-in-time snapshots" if snapshot_dir is None else "reading snapshots",
         0, phases)
    if as_of is not None:
        tables = cut_tables(tables, as_of)
    plan = history_plan(tables, params)  # refuses a history too short, saying how much more
    params = fit_params(params, plan)  # a short history's smaller model
    if snapshot_dir is None:
        snaps, last = snapshots(tables, params)
    else:
        snaps, last = load_snapshots(snapshot_dir, tables, params, as_of), tables.last_date
    days = snaps["as_of"].unique().sort().to_list()
    train_rows, holdout, split = time_split(
        snaps, holdout_share=params.train.holdout_share, embargo_days=params.train.embargo_days)
    share = float(snaps.height / (1.0 / snaps["sampled_share"]).sum())
    del snaps  # its training and held-out rows are copies
    logger.info("snapshots: %d train, %d holdout, split at %s (%.1f%% of debtor-days kept)",
                train_rows.height, holdout.height, split, 100 * share)
    check_holdout(holdout, split, plan)
    before = split - dt.timedelta(days=embargo_of(days, split, params.train.embargo_days))
    treated = None if snapshot_dir is None else load_treated(snapshot_dir, before=before,
                                                             data_end=last)
    if treated is None:
        treated = treated_rows(_in_memory(tables), before=before,
                               horizon_days=params.train.horizon_days, data_end=last)
    acted = acted_keys(tables, before) if treated_sampled(treated) else None
    step(f"fitting LightGBM on {train_rows.height:,} snapshots", 1, phases)
    models = fit(train_rows, params, treated, acted)
    models = with_value(models, _in_memory(tables), train_rows, before=split,
                        policy=policy or Policy(), seed=params.train.seed,
                        n_estimators=value_rounds(params.train))
    models.card.update(history=plan.card(),
                       not_learnt=not_learnt(models, plan, params, policy or Policy()))
    n_train = train_rows.height
    del train_rows, treated, acted  # the holdout is all that is scored from here on
    h = params.train.horizon_days
    step(f"scoring {holdout.height:,} holdout snapshots against the simple references", 2,
         phases)
    scores = {**evaluate(models, holdout, horizon_days=h),
              **evaluate(None, holdout, prefix="naive_", horizon_days=h),
              **reference_scores(holdout, book_prior(tables, split), horizon_days=h)}
    if "ref_best_late_auc" in scores:
        scores["late_auc_gain"] = scores["late_auc"] - scores["ref_best_late_auc"]

    pol = policy or Policy()
    step("off-policy evaluation on the holdout's logged decisions", 3, phases)
    sample = _ope_sample(tables, data_dir, split, params)
    scores |= _off_policy(sample, pol, models, "ope_")
    if sample is not None:
        scores["ope_debtors_decided"] = float(sample.decided)

    step("comparing with the champion", 4, phases)
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
    if champ is not None and sample is not None:
        try:  # the champion's policy on the very same decisions (and bootstrap draws)
            champ |= _off_policy(sample, pol, current, "champion_ope_")
        except (OSError, ValueError, KeyError, PaycadenceError) as exc:
            logger.warning("the value of champion %s could not be estimated: %s",
                           champion.version, exc)
    promote, why = gate(scores, champ, params)
    if champ is not None:
        scores |= {k: v for k, v in champ.items() if k.startswith("champion_ope_")}
        scores |= {f"champion_{k}": champ[f"champion_{k}"] for k in ("late_auc", "late_brier")}
    compared = str(champion.version) if champ is not None else None

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
                         "best_reference": best_reference(scores)[0],
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
            "p_late", "p_open_7d", "expected_days_late", "p_unpaid_90d").to_pandas()
        version = tracking.log_model(risk_dir, model_name=model_name, example=example,
                                     signature=infer_signature(example, out))
        alias = "champion" if promote else "challenger"
        client.set_registered_model_alias(model_name, alias, version)
        for key, value in (book_tags(tables, book, debtor_ids) | history_tags(models.card)
                           ).items():
            client.set_model_version_tag(model_name, version, key, value)
            mlflow.set_tag(key, value)
        for key in tracking.METRIC_TAGS:  # a short history's holdout may lack some
            if key in scores:
                client.set_model_version_tag(model_name, version, key, f"{scores[key]:.6f}")
        for key in tracking.VALUE_TAGS:  # both policies' value on the holdout's decisions
            if key in scores and np.isfinite(scores[key]):
                client.set_model_version_tag(model_name, version, key, f"{scores[key]:.6f}")
        if compared is not None:
            client.set_model_version_tag(model_name, version, tracking.COMPARED_TAG, compared)
            mlflow.set_tag(tracking.COMPARED_TAG, compared)
        client.set_model_version_tag(model_name, version, "promotion", why)
        mlflow.set_tag("promotion", why)
        mlflow.log_text(json.dumps(scores, indent=2), "metrics.json")
        run_id = run.info.run_id
    logger.info("registered %s version %s as %s: %s", model_name, version, alias, why)
    return TrainResult(run_id, version, alias, why, scores, n_train, holdout.height,
                       split, models, reliability)

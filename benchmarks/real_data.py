"""Real data: ``p_late`` at the issue date against every simple reference, on rolling time splits
of each public receivables data set there is (benchmarks/datasets.py; docs/models.md, "Real
data").

For each data set and each cut day: the forecasts are fitted as the product fits them
(:func:`paycadence.training.fitting.fit` on the labelled weekly snapshots of
:func:`paycadence.training.snapshots.snapshots`) on what was known on the cut's morning —
invoices issued before it, payments dated before it, labels not yet known then censored. The
invoices issued from the cut to the next cut (the last cut: to the end of the data) are then
each scored on their issue date with the history known that morning, and so are the references
of :mod:`paycadence.training.references` (their priors from what was settled before the cut):
``p_late`` AUC, Brier and ECE, and the mean absolute error of ``expected_days_late`` against
the shrunk median (invoices whose days late the data cannot tell left out). Prints a Markdown
table per data set, the mean and spread over the cuts, and the command line.

    .venv/bin/python benchmarks/real_data.py [--data ibm-ar uci-credit-card] [--fetch]
        [--cache ~/.cache/paycadence/data] [--cuts 2013-01-01 2013-05-01 2013-09-01]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from datasets import DATASETS, DEFAULT_CACHE, fetch, located

from paycadence.config import Params, load_params
from paycadence.data import Tables, settlements
from paycadence.training.fitting import fit
from paycadence.training.forecastcheck import forecast_rows
from paycadence.training.metrics import expected_calibration_error
from paycadence.training.references import (
    DAYS_REFERENCE,
    LATE_REFERENCES,
    best,
    book_prior,
    days_reference,
    late_references,
)
from paycadence.training.snapshots import snapshots

PREDICTORS = ("model", *LATE_REFERENCES)


@dataclass(frozen=True)
class CutScores:
    """One cut's figures: ``trained`` invoices issued and settled before ``cut``, ``snapshots``
    labelled snapshot rows fitted on (of ``snapshot_days`` days); ``invoices`` scored (issued
    from ``cut`` to ``until``), ``late_share`` of them late; per predictor (``model`` and each
    reference) ``auc``, ``brier``, ``ece``; ``days_mae`` (``model``, ``median``: days) over
    ``days_scored`` invoices whose days late are known."""

    cut: dt.date
    until: dt.date
    trained: int
    snapshots: int
    snapshot_days: int
    invoices: int
    late_share: float
    auc: dict[str, float] = field(default_factory=dict)
    brier: dict[str, float] = field(default_factory=dict)
    ece: dict[str, float] = field(default_factory=dict)
    days_mae: dict[str, float] = field(default_factory=dict)
    days_scored: int = 0
    seconds: float = 0.0

    @property
    def best_reference(self) -> tuple[str, float]:
        """The reference with the highest AUC, and that AUC."""
        return best({k: self.auc[k] for k in LATE_REFERENCES})


def known_before(tables: Tables, cut: dt.date) -> Tables:
    """What the morning of ``cut`` knew, less the invoices issued that day (they are scored):
    every row dated before ``cut``."""
    return Tables(
        debtors=tables.debtors,
        invoices=tables.invoices.filter(pl.col("issue_date") < cut),
        payments=tables.payments.filter(pl.col("paid_on") < cut),
        actions=tables.actions.filter(pl.col("sent_on") < cut),
        disputes=tables.disputes.filter(pl.col("opened_on") < cut))


def at_issue(tables: Tables, start: dt.date, until: dt.date) -> pl.DataFrame:
    """The features of the invoices issued from ``start`` to the day before ``until``, each on
    its issue day, with ``settled_on``, ``late`` (not settled by the due date) and
    ``days_late`` (settlement − due; null when never settled), sorted by invoice."""
    new = tables.invoices.filter(pl.col("issue_date").is_between(start, until, closed="left"))
    return forecast_rows(tables, new, "issue_date")


def score_cut(tables: Tables, cut: dt.date, until: dt.date, params: Params) -> CutScores:
    """Fit on what was known on the morning of ``cut`` and score the invoices issued from
    ``cut`` to ``until`` (see the module docstring)."""
    from sklearn.metrics import roc_auc_score

    t0 = time.perf_counter()
    known = known_before(tables, cut)
    snaps, _ = snapshots(known, params)
    models = fit(snaps, params)
    end = tables.last_date
    feats = at_issue(tables, cut, until).filter(pl.col("due_date") <= end)  # outcome known
    y = feats["late"].to_numpy()
    prior = book_prior(tables, cut)
    forecast = models.predict(feats)
    p = {"model": forecast["p_late"].to_numpy(), **late_references(feats, prior)}
    horizon = params.train.horizon_days
    # days late known: settled, or never settled and followed for the whole horizon (the cap)
    days_known = feats["days_late"].is_not_null() | (
        feats["due_date"] + dt.timedelta(days=horizon) <= end)
    days = feats["days_late"].fill_null(float(horizon)).clip(upper_bound=horizon).to_numpy()
    keep = days_known.to_numpy()
    guesses = {"model": forecast["expected_days_late"].to_numpy(),
               DAYS_REFERENCE: days_reference(feats, prior)}
    mae = {k: float(np.mean(np.abs(np.minimum(v, horizon)[keep] - days[keep])))
           if keep.any() else math.nan for k, v in guesses.items()}
    settled_before = known.invoices.join(
        settlements(known.invoices.lazy(), known.payments.lazy()).collect(), on="invoice_id"
    ).filter(pl.col("settled_on").is_not_null()).height
    labelled = snaps.filter(pl.col("y_late").is_not_null())
    return CutScores(
        cut, until, settled_before, labelled.height, labelled["as_of"].n_unique(),
        int(feats.height), float(y.mean()),
        auc={k: float(roc_auc_score(y, v)) for k, v in p.items()},
        brier={k: float(np.mean((v - y) ** 2)) for k, v in p.items()},
        ece={k: expected_calibration_error(y, v) for k, v in p.items()},
        days_mae=mae, days_scored=int(keep.sum()), seconds=time.perf_counter() - t0)


def compare(tables: Tables, cuts: list[dt.date], params: Params) -> list[CutScores]:
    """:func:`score_cut` for each cut (ascending), each scoring up to the next cut, the last up
    to the end of the data."""
    cuts = sorted(cuts)
    end = tables.last_date + dt.timedelta(days=1)
    return [score_cut(tables, cut, nxt, params)
            for cut, nxt in zip(cuts, [*cuts[1:], end], strict=True)]


def _spread(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {float(np.std(values, ddof=1)):.3f}"


def table(name: str, scores: list[CutScores], *, days: bool = True) -> str:
    """The Markdown table of one data set: a row per cut and predictor, then the mean ± sd
    (sample standard deviation) over the cuts and the model's AUC gain over the best
    reference; without ``days`` (settlement days made up), no days-late figure."""
    lines = [f"\n### {name}\n",
             "| cut | trained on | scored (late) | predictor | AUC | Brier | ECE | days MAE |",
             "|---|---|---|---|---|---|---|---|"]
    for s in scores:
        ref = s.best_reference[0]
        for k in PREDICTORS:
            mae = math.nan if not days else s.days_mae["model"] if k == "model" else (
                s.days_mae[DAYS_REFERENCE] if k == "shrunk" else math.nan)
            lines.append(
                f"| {s.cut} → {s.until - dt.timedelta(days=1)} | {s.trained:,} invoices, "
                f"{s.snapshots:,} snapshots ({s.snapshot_days} days) | {s.invoices:,} "
                f"({s.late_share:.1%}) | {k}{' (best)' if k == ref else ''} | "
                f"{s.auc[k]:.3f} | {s.brier[k]:.4f} | {s.ece[k]:.3f} | "
                f"{'' if mae != mae else f'{mae:.2f}'} |")
    lines += ["", "| predictor | AUC | Brier | ECE | days MAE |", "|---|---|---|---|---|"]
    for k in PREDICTORS:
        mae = ([] if not days else [s.days_mae["model"] for s in scores] if k == "model" else
               [s.days_mae[DAYS_REFERENCE] for s in scores] if k == "shrunk" else [])
        lines.append(f"| {k} | {_spread([s.auc[k] for s in scores])} | "
                     f"{_spread([s.brier[k] for s in scores])} | "
                     f"{_spread([s.ece[k] for s in scores])} | "
                     f"{_spread(mae) if mae else ''} |")
    gains = [s.auc["model"] - s.best_reference[1] for s in scores]
    brier = [s.brier["model"] - min(s.brier[k] for k in LATE_REFERENCES) for s in scores]
    mae_note = ("days MAE in row `shrunk`: the shrunk median (the `median` reference)" if days
                else "no days-late figure: the settlement days are made up")
    lines.append(f"\nmodel − best reference: AUC {_spread(gains)} (above it on "
                 f"{sum(g > 0 for g in gains)} of {len(gains)} cuts); Brier {_spread(brier)}; "
                 f"{mae_note}; {sum(s.seconds for s in scores):.0f} s")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=sorted(DATASETS), default=sorted(DATASETS))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where fetched files are kept (outside the repository)")
    parser.add_argument("--fetch", action="store_true",
                        help="download the data sets missing from the cache (sha256 checked)")
    parser.add_argument("--cuts", nargs="+", type=dt.date.fromisoformat,
                        help="cut days (one data set only; default: the data set's own)")
    parser.add_argument("--params", type=Path, help="params.yaml (default: the shipped one)")
    args = parser.parse_args()
    if args.cuts and len(args.data) > 1:
        parser.error("--cuts needs a single --data")
    from paycadence.quiet import quiet_libraries

    quiet_libraries()
    params = load_params(args.params)
    print("    " + shlex.join([".venv/bin/python", "benchmarks/real_data.py", *sys.argv[1:]]))
    for name in args.data:
        data = DATASETS[name]
        folder = located(data, args.cache)
        if folder is None and args.fetch:
            folder = fetch(data, args.cache)
        if folder is None:
            print(f"\n{name}: skipped, {data.file} is not in {args.cache / name}; fetch it with "
                  f"`.venv/bin/python benchmarks/real_data.py --data {name} --fetch`")
            continue
        tables = data.load(folder)
        print(f"\n{name}: {folder / data.file} (sha256 {data.sha256[:12]}…, {data.licence}); "
              f"{tables.invoices.height:,} invoices of {tables.debtors.height:,} debtors, "
              f"{tables.invoices['issue_date'].min()} … {tables.last_date}")
        print(table(name, compare(tables, args.cuts or list(data.cuts), params),
                    days=data.daily), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

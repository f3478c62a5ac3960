"""Real-data check: p_late on the public IBM accounts-receivable sample, time-based split.

Every invoice is scored as of its issue date (history known at that date only, through the
same point-in-time features as everywhere else). Train on the invoices settled before the cut
date, score the invoices issued on or after it; compare with the naive reference, the customer's
past share of late invoices. Prints AUC and Brier for both.

    .venv/bin/python benchmarks/ibm_ar.py [--data ../shared/data/ibm-ar] [--cut 2013-07-01]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import polars as pl

from paycadence.data import ingest, settlements
from paycadence.data.mapping import load_mapping
from paycadence.features import FEATURES, invoice_features
from paycadence.models import LateRiskModel, calibration
from paycadence.training.metrics import binary_metrics

DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ibm-ar"


def at_issue(tables) -> pl.DataFrame:
    """Features of every invoice as of its own issue date, with its outcome."""
    parts = []
    for day, ids in tables.invoices.group_by("issue_date").agg("invoice_id").iter_rows():
        parts.append(invoice_features(tables, as_of=day, invoice_ids=ids))
    frame = pl.concat(parts)
    outcome = settlements(tables.invoices.lazy(), tables.payments.lazy()).collect()
    return frame.join(outcome.select("invoice_id", "settled_on"), on="invoice_id").with_columns(
        late=(pl.col("settled_on") > pl.col("due_date")).cast(pl.Int64))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--cut", type=dt.date.fromisoformat, default=dt.date(2013, 7, 1))
    args = parser.parse_args()
    if not (args.data / "WA_Fn-UseC_-Accounts-Receivable.csv").exists():
        print(f"IBM sample not found in {args.data}: nothing to check")
        return 0
    tables = ingest(args.data, mapping=load_mapping("ibm-ar")).tables
    frame = at_issue(tables)
    train = frame.filter(pl.col("settled_on") < args.cut)
    test = frame.filter(pl.col("as_of") >= args.cut)
    # 100 customers, ~2,000 training invoices: shallow trees (deeper ones overfit, measured)
    model = LateRiskModel(n_estimators=300, learning_rate=0.03, num_leaves=4,
                          min_child_samples=50, random_state=0)
    model.fit(train.select(FEATURES).to_pandas(), train["late"].to_numpy())
    p_model = model.predict_proba(test.select(FEATURES).to_pandas())[:, 1]
    # the same, calibrated as `paycadence train` does: fit on all but the latest fifth of the
    # training invoices (by issue date), choose and fit the calibration on that fifth
    cut_issue = train["as_of"].sort()[int(0.8 * train.height)]
    early, late = train.filter(pl.col("as_of") < cut_issue), train.filter(
        pl.col("as_of") >= cut_issue)
    base = LateRiskModel(n_estimators=300, learning_rate=0.03, num_leaves=4,
                         min_child_samples=50, random_state=0).fit(
        early.select(FEATURES).to_pandas(), early["late"].to_numpy())
    cal = calibration.choose(base.predict_proba(late.select(FEATURES).to_pandas())[:, 1],
                             late["late"].to_numpy(), late["as_of"].to_physical().to_numpy())
    p_cal = cal.apply(base.predict_proba(test.select(FEATURES).to_pandas())[:, 1])
    n = test["n_settled"].to_numpy()
    share = np.nan_to_num(test["share_late"].to_numpy(), nan=train["late"].mean())
    p_naive = (share * n + 1) / (n + 2)
    y = test["late"].to_numpy()
    print(f"IBM AR sample: {frame.height} invoices scored at issue; cut {args.cut}: "
          f"train {train.height} (settled before), test {test.height} (issued on/after)")
    print(f"test base rate (share late): {y.mean():.3f}")
    for name, p in (("model (LightGBM, point-in-time features)", p_model),
                    (f"model, calibrated ({cal.method}) on later invoices", p_cal),
                    ("naive (customer's past share late)", p_naive)):
        m = binary_metrics(y, p)
        print(f"{name:44s} AUC {m['auc']:.3f}   Brier {m['brier']:.4f}   ECE {m['ece']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

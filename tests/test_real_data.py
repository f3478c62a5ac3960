"""The real-data benchmark (benchmarks/real_data.py): its comparison on the IBM sample, the
pinned checksums of the public data sets, and the card data's mapping."""

from __future__ import annotations

import datetime as dt
import importlib
import math
import sys
from pathlib import Path

import polars as pl
import pytest

from paycadence.config import TrainParams, load_params

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """The benchmark's two modules, imported from benchmarks/ (not a package)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("datasets"), importlib.import_module("real_data")
    for name in ("datasets", "real_data"):
        sys.modules.pop(name, None)


def test_ibm_sample_scores_the_model_and_every_reference(bench, shared_dir):
    datasets, real_data = bench
    folder = shared_dir / "data" / "ibm-ar"
    if not (folder / datasets.IBM.file).is_file():
        pytest.skip("../shared/data/ibm-ar is absent")
    tables = datasets.IBM.load(datasets.verify(folder / datasets.IBM.file,
                                               datasets.IBM.sha256).parent)
    base = load_params()
    params = base.model_copy(update={"train": TrainParams(**(base.train.model_dump() | {
        "n_estimators": 40}))})
    (got,) = real_data.compare(tables, [dt.date(2013, 7, 1)], params)
    assert got.trained > 1000 and got.invoices > 400 and 0 < got.late_share < 1
    for scores in (got.auc, got.brier, got.ece):
        assert set(scores) == {"model", "laplace", "shrunk", "recent"}
        assert all(math.isfinite(v) for v in scores.values())
    assert got.auc["model"] > 0.5
    assert set(got.days_mae) == {"model", "median"} and got.days_scored == got.invoices
    assert "| model |" in real_data.table("ibm-ar", [got])


def test_a_file_that_is_not_the_published_one_is_refused(bench, tmp_path):
    datasets, _ = bench
    path = tmp_path / "uci-credit-card" / datasets.UCI.file
    path.parent.mkdir()
    path.write_text("ID,X1\n1,20000\n")
    with pytest.raises(datasets.ChecksumError, match="is not the pinned .*--fetch"):
        datasets.verify(path, datasets.UCI.sha256)
    with pytest.raises(datasets.ChecksumError, match="not the published file"):
        datasets.located(datasets.UCI, tmp_path)
    assert datasets.located(datasets.UCI, tmp_path / "empty") is None


def test_a_download_with_another_checksum_is_not_kept(bench, tmp_path):
    datasets, _ = bench
    source = tmp_path / "published.csv"
    source.write_text("ID,X1\n1,20000\n")
    wrong = datasets.DataSet(name="x", file="x.csv", url=source.as_uri(), sha256="0" * 64,
                             licence="", cuts=(), load=datasets.ibm_ar)
    with pytest.raises(datasets.ChecksumError, match="refused, nothing kept"):
        datasets.fetch(wrong, tmp_path / "cache")
    assert list((tmp_path / "cache" / "x").iterdir()) == []
    right = datasets.DataSet(name="x", file="x.csv", url=source.as_uri(),
                             sha256=datasets.sha256_of(source), licence="", cuts=(),
                             load=datasets.ibm_ar)
    assert (datasets.fetch(right, tmp_path / "cache") / "x.csv").read_bytes() == \
        source.read_bytes()


def test_card_statements_become_invoices_settled_when_the_account_is_current(bench):
    datasets, _ = bench
    # client 1: late on April's statement (May status 1), current again in July; no bill in
    # September. Client 2: always current, defaults in October.
    raw = pl.DataFrame({
        "ID": [1, 2], "X1": [1000, 1000], "X2": [1, 2], "X3": [1, 1], "X4": [1, 1],
        "X5": [30, 40],
        "X6": [0, 0], "X7": [0, 0], "X8": [-1, 0], "X9": [2, 0], "X10": [1, 0], "X11": [0, 0],
        "X12": [0, 60], "X13": [50, 50], "X14": [40, 40], "X15": [30, 30], "X16": [20, 20],
        "X17": [10, 10],
        **{f"X{k}": [0, 0] for k in range(18, 24)}, "Y": [0, 1]})
    got = datasets.card_statements(raw)
    inv = got["invoices"].join(got["payments"].select("invoice_id", "paid_on"),
                               on="invoice_id", how="left").sort("invoice_id")
    assert inv["invoice_id"].to_list()[:6] == [f"1-2005-{m:02d}" for m in range(4, 9)] + [
        "2-2005-04"]
    april = inv.row(0, named=True)
    assert april["issue_date"] == dt.date(2005, 4, 30)
    assert april["due_date"] == dt.date(2005, 5, 20)
    assert april["paid_on"] == dt.date(2005, 7, 20)  # late: May and June show a delay
    assert inv.row(1, named=True)["paid_on"] == dt.date(2005, 7, 20)  # May's: June late too
    assert inv.row(2, named=True)["paid_on"] == dt.date(2005, 7, 20)  # June's: on time
    two = inv.filter(pl.col("debtor_id") == "2").sort("issue_date")
    assert two.height == 6 and two["paid_on"][-1] is None  # September's, then a default
    assert (two["paid_on"][:-1] == two["due_date"][:-1]).all()

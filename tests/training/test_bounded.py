"""``train --features`` in bounded memory: the clean tables scanned, not held; the same digest,
day, keys and model as with the tables in memory; the off-policy evaluation on a capped, seeded
sample of the holdout's decided debtors."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from paycadence.cli import app
from paycadence.config import Params, TrainParams
from paycadence.data import TABLE_NAMES, read_clean
from paycadence.training import bounded
from paycadence.training.bounded import ScannedTables, clean_tables, ope_sample
from paycadence.training.ope import scan_decisions
from paycadence.training.train import acted_keys, cut_tables, fingerprint, save_snapshots, train


def with_train(params: Params, **changes) -> Params:
    return params.model_copy(update={"train": TrainParams(
        **(params.train.model_dump() | changes))})


def test_scanned_fingerprint_day_and_keys_equal_in_memory(tables, clean_dir, sim_dir,
                                                          monkeypatch, tmp_path):
    monkeypatch.setattr(bounded, "BATCH_ROWS", 1000)  # several batches per table
    scanned = ScannedTables(clean_dir)
    assert fingerprint(scanned) == fingerprint(tables)
    assert scanned.last_date == tables.last_date
    day = tables.last_date - dt.timedelta(days=90)
    cut = cut_tables(scanned, day)
    assert fingerprint(cut) == fingerprint(cut_tables(tables, day))
    assert cut.last_date == cut_tables(tables, day).last_date
    keys = ["invoice_id", "as_of"]
    assert_frame_equal(acted_keys(cut, day - dt.timedelta(days=30)).sort(keys),
                       acted_keys(tables, day - dt.timedelta(days=30)).sort(keys))
    # raw input goes through the streamed ingest first: the same tables, the same digest
    staged = clean_tables(sim_dir, tmp_path / "staged")
    assert staged == tmp_path / "staged"
    assert fingerprint(ScannedTables(staged)) == fingerprint(tables)
    assert clean_tables(clean_dir, tmp_path / "unused") == clean_dir
    whole = scanned.collect()
    for name in TABLE_NAMES:
        assert_frame_equal(getattr(whole, name), getattr(read_clean(clean_dir), name))


def test_ope_sample_is_capped_seeded_and_reads_only_its_debtors(tables, clean_dir, sim_dir):
    decisions = scan_decisions(sim_dir)
    since = tables.last_date - dt.timedelta(days=120)
    kw = {"since": since, "seed": 42}
    every = ope_sample(tables, decisions, max_debtors=10**6, **kw)
    assert not every.sampled and every.tables is tables  # nothing sampled: as before
    assert every.debtors == every.decided > 40
    assert every.decisions["decided_on"].min() >= since
    capped = ope_sample(ScannedTables(clean_dir), decisions, max_debtors=40, **kw)
    assert capped.sampled and capped.debtors == 40 and capped.decided == every.decided
    ids = capped.decisions["debtor_id"].unique().sort()
    assert ids.len() == 40 and set(ids) < set(every.decisions["debtor_id"])
    # every decision of the sampled debtors, none of the others
    assert_frame_equal(capped.decisions, every.decisions.filter(
        pl.col("debtor_id").is_in(ids.implode())))
    again = ope_sample(tables, decisions, max_debtors=40, **kw)
    assert_frame_equal(again.decisions, capped.decisions)  # the same draw, in memory too
    wanted = tables.for_debtors(ids)
    for name in TABLE_NAMES:  # only the sampled debtors' rows were read
        assert_frame_equal(getattr(capped.tables, name), getattr(wanted, name))
    assert set(ope_sample(tables, decisions, max_debtors=20, **kw).decisions["debtor_id"]) < \
        set(ids)  # a smaller cap keeps the lowest hashes of the larger one's
    other = ope_sample(tables, decisions, max_debtors=40, since=since, seed=1)
    assert set(other.decisions["debtor_id"]) != set(ids)


@pytest.mark.slow
def test_train_features_bounded_gives_the_in_memory_model(tables, sim_dir, small_params,
                                                         mlflow_uri, workdir, monkeypatch):
    """``train --data RAW --features DIR`` (raw input: streamed ingest, then scanned) gives the
    metrics the in-memory ``train`` gives from the same snapshots, off-policy ones included (on
    a sample of the decided debtors, the same in both); with a smaller ``ope_max_debtors`` both
    models are evaluated on a smaller sample."""
    # three trainings: small boosters, and the off-policy replay on a sample of 60 debtors
    quick = with_train(small_params, n_estimators=30, ope_max_debtors=60)
    folder, _ = save_snapshots(tables, quick, workdir / "features")
    before = train(tables, params=quick, data_dir=str(sim_dir), snapshot_dir=folder,
                   model_name="paycadence-bounded-memory")
    assert before.metrics["ope_debtors"] == 60 < before.metrics["ope_debtors_decided"]
    (workdir / "params.yaml").write_text(yaml.safe_dump(quick.model_dump(mode="json")))
    with monkeypatch.context() as env:  # the command registers the default model name: its
        # own store, so that the session's champion (other tests') stays where it is
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'cli-mlflow.db'}")
        r = CliRunner().invoke(app, [
            "train", "--data", str(sim_dir), "--features", str(folder), "--params",
            str(workdir / "params.yaml"), "--no-feedback", "--metrics-out",
            str(workdir / "metrics.json"), "--quiet"])
    assert r.exit_code == 0, r.output
    got = json.loads((workdir / "metrics.json").read_text())
    mine = {k: v for k, v in before.metrics.items() if v == v}
    assert {k: got[k] for k in mine} == mine

    capped = with_train(quick, ope_max_debtors=40)
    result = train(ScannedTables(clean_tables(sim_dir, workdir / "clean")), params=capped,
                   data_dir=str(sim_dir), snapshot_dir=folder,
                   model_name="paycadence-bounded-memory")  # a champion to compare with
    m = result.metrics
    assert m["ope_debtors"] == 40
    assert m["ope_debtors_decided"] == before.metrics["ope_debtors_decided"]
    assert m["ope_decisions"] < before.metrics["ope_decisions"]
    assert m["late_auc"] == before.metrics["late_auc"]
    assert m["champion_ope_debtors"] == 40  # the champion on the same sample
    import mlflow

    tags = mlflow.get_run(result.run_id).data.tags
    assert tags["ope_sample"].startswith("40 of ") and \
        tags["data_fingerprint"] == fingerprint(tables)


def test_scanned_tables_need_saved_snapshots(clean_dir, small_params):
    with pytest.raises(ValueError, match="saved snapshots"):
        train(ScannedTables(clean_dir), params=small_params)

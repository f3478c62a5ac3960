"""Training on the simulated company: better than the simple references, tracked and
registered."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from paycadence.features import invoice_features
from paycadence.models import RiskModels
from paycadence.training import tracking, train
from paycadence.training.train import MODEL_NAME


def test_model_beats_the_strongest_simple_references(trained):
    """p_late of the invoices not yet due against the best of the debtor's share late
    (smoothed, shrunk toward the book's rate, recency-weighted), days late against its median
    shrunk toward the book's — and the naive reference, the rule-based fallback."""
    m = trained.metrics
    assert m["late_auc"] > m["ref_best_late_auc"] + 0.01
    assert m["late_auc_gain"] == pytest.approx(m["late_auc"] - m["ref_best_late_auc"])
    assert m["ref_best_late_auc"] == max(m[f"ref_{k}_late_auc"]
                                         for k in ("laplace", "shrunk", "recent"))
    assert m["late_brier"] < m["ref_best_late_brier"] < m["naive_late_brier"] + 1e-12
    assert m["days_mae"] < m["ref_median_days_mae"]
    assert m["days_mae"] < m["naive_days_mae"]
    assert 0 <= m["late_ece"] < 0.1


def test_run_is_tracked_and_registered_as_champion(trained, mlflow_uri):
    client = tracking.setup()
    run = client.get_run(trained.run_id)
    assert run.data.metrics["late_auc"] == pytest.approx(trained.metrics["late_auc"])
    assert run.data.params["train.n_estimators"] == "80"
    for tag in ("data_fingerprint", "code_version", "split_date"):
        assert run.data.tags[tag]
    version = tracking.alias_version(client, MODEL_NAME, "champion")
    assert version is not None and str(version.version) == trained.version
    features = client.download_artifacts(trained.run_id, "features.json")
    assert "share_late" in open(features).read()


def test_pyfunc_from_registry_matches_the_bundle(trained, tables):
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    as_of = tables.last_date
    frame = invoice_features(tables, as_of=as_of)
    got = model.predict(frame.select(trained.models.features).to_pandas())
    want = trained.models.predict(frame)
    assert np.allclose(got["p_late"].to_numpy(), want["p_late"].to_numpy())
    assert model.metadata.signature is not None


def test_shap_values_add_up_to_the_raw_output(trained, tables):
    frame = invoice_features(tables, as_of=tables.last_date)
    values, base = trained.models.contributions(frame)
    assert np.allclose(base + values.sum(axis=1), trained.models.raw(frame), atol=1e-9)


def test_the_registered_model_pins_what_it_needs_to_load(trained):
    """requirements.txt lists paycadence and its own dependencies at the installed versions
    (given, not inferred by loading the model in a subprocess)."""
    from importlib.metadata import version
    from pathlib import Path

    import mlflow

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{MODEL_NAME}/{trained.version}")
    pins = (Path(local) / "requirements.txt").read_text().split()
    for name in ("paycadence", "lightgbm", "polars", "numpy", "mlflow"):
        assert f"{name}=={version(name)}" in pins
    assert not any(p.startswith("pyspark") for p in pins)  # an extra's, not needed to load


def test_saved_models_load_identically(trained, tables, tmp_path):
    frame = invoice_features(tables, as_of=tables.last_date)
    loaded = RiskModels.load(trained.models.save(tmp_path / "risk"))
    assert loaded.predict(frame).equals(trained.models.predict(frame))


def test_same_data_params_seed_give_same_model_bit_for_bit(trained, tables, small_params):
    from paycadence.features import build_snapshots, snapshot_dates
    from paycadence.training.train import fit

    frame = invoice_features(tables, as_of=tables.last_date)
    dates = snapshot_dates(tables, every_days=14, min_history_days=60)[:20]
    one = fit(build_snapshots(tables, dates, horizon_days=120), small_params)
    two = fit(build_snapshots(tables, dates, horizon_days=120), small_params)
    for key in ("late", "hazard"):
        assert one.boosters[key].model_to_string() == two.boosters[key].model_to_string()
    assert one.calibrator == two.calibrator
    assert one.predict(frame).equals(two.predict(frame))


def test_worse_model_stays_challenger(trained, tables, small_params):
    weak = small_params.model_copy(update={"train": small_params.train.model_copy(
        update={"n_estimators": 1, "num_leaves": 2})})
    result = train(tables, params=weak)
    assert result.alias == "challenger", result.reason
    assert "stays challenger" in result.reason
    # no data directory, so no decision log: the forecast rule decides alone, and says so
    assert result.reason.startswith("stays challenger by the forecast rule alone (no logged "
                                    "decisions with propensities in the holdout"), result.reason
    client = tracking.setup()
    assert str(tracking.alias_version(client, MODEL_NAME, "champion").version) == trained.version


def test_too_short_history_is_a_clear_error(tables, small_params):
    from paycadence.errors import InputError
    from paycadence.training.train import cut_tables

    first = tables.invoices["issue_date"].min()
    short = cut_tables(tables, first + __import__("datetime").timedelta(days=40))
    with pytest.raises(InputError, match=r"^41 days of history; at least 60 are needed to "
                       r"train \(19 more days\)$"):
        train(short, params=small_params)  # 60 days train: tests/training/test_short_history.py


def test_labels_are_censored_not_guessed():
    import datetime as dt

    from paycadence.data import Tables
    from paycadence.features import label

    d = dt.date
    tables = Tables.from_frames(
        invoices=pl.DataFrame({"invoice_id": ["a", "b", "c"], "debtor_id": ["x"] * 3,
                               "issue_date": [d(2025, 1, 1)] * 3, "due_date": [d(2025, 1, 31)] * 3,
                               "amount": [10.0] * 3}),
        payments=pl.DataFrame({"invoice_id": ["a", "b"], "paid_on": [d(2025, 1, 20),
                                                                     d(2025, 2, 20)],
                               "amount": [10.0, 10.0]}),
    )
    frame = pl.DataFrame({"invoice_id": ["a", "b", "c"], "as_of": [d(2025, 1, 10)] * 3,
                          "due_date": [d(2025, 1, 31)] * 3})
    out = label(frame, tables, data_end=d(2025, 3, 1), horizon_days=120).sort("invoice_id")
    assert out["y_late"].to_list() == [0.0, 1.0, 1.0]  # c: unpaid a month after due → late
    assert out["y_unpaid_90d"].to_list() == [None, None, None]  # 90 days not yet reached
    # a: paid on 20 January, b: on 20 February, c: never. On 25 January the due date is not
    # reached: a's payment is known, b's and c's fate not — all three are censored, or the
    # rows known would be those paid early only (a bias toward "on time")
    early = label(frame, tables, data_end=d(2025, 1, 25), horizon_days=120).sort("invoice_id")
    assert early["y_late"].to_list() == [None, None, None]
    assert early["y_days_late"].to_list() == [-11.0, None, None]  # a settled: its days known
    assert out["y_days_late"].to_list() == [-11.0, 20.0, None]


def test_forecasts_are_one_settlement_distribution(trained, tables):
    from paycadence.models.hazard import CASH_WEEKS, bin_probabilities, median_wait, survival_at

    frame = invoice_features(tables, as_of=tables.last_date)
    f = trained.models.predict_matrix(trained.models.matrix(frame))
    dpd = frame["days_past_due"].to_numpy()
    assert np.allclose(f.p_unpaid_90d, survival_at(f.survival, 91 - dpd))
    assert np.allclose(f.expected_days_late - dpd, median_wait(f.survival))
    assert np.allclose(f.week_probs, bin_probabilities(f.survival)[:, :CASH_WEEKS])
    assert np.all(f.p_unpaid_90d[dpd > 90] == 1.0)
    pred = trained.models.predict(frame)
    cash = np.asarray(pred["cash_weeks"].to_list())
    assert cash.shape == (frame.height, CASH_WEEKS)
    assert np.all(cash.sum(axis=1) <= frame["open_amount"].to_numpy() + 0.01 * CASH_WEEKS)
    assert (pred["expected_settled_on"] >= frame["as_of"]).all()


def test_evaluation_reports_every_figure(trained):
    m = trained.metrics
    for key in ("late_auc", "late_brier", "late_log_loss", "late_ece", "unpaid_ece", "days_mae",
                "naive_days_mae", "cash_wape", "naive_cash_wape", "late_auc_before_due",
                "open7_auc", "open7_ece", "late_ece_new", "ref_shrunk_late_auc",
                "ref_recent_late_brier", "ref_median_days_mae"):
        assert key in m and np.isfinite(m[key]), key
    assert m["late_ece"] < m["naive_late_ece"]
    assert m["open7_auc"] > m["naive_open7_auc"]
    assert m["cash_wape"] < m["naive_cash_wape"]
    # p_late is scored where it means "settles after the due date": on invoices not yet due
    assert m["late_n"] == m["late_n_before_due"]
    # the simulated data dir carries its decision log: the policy is evaluated off-policy
    for key in ("ope_logged", "ope_ips", "ope_snips", "ope_dr", "ope_decisions"):
        assert key in m and np.isfinite(m[key]), key
    assert m["ope_dr_low"] <= m["ope_dr"] <= m["ope_dr_high"]
    assert m["ope_gain"] == pytest.approx(m["ope_dr"] - m["ope_logged"])
    assert m["ope_gain_low"] <= m["ope_gain"] <= m["ope_gain_high"]


def test_run_logs_plots_calibration_and_lineage(trained, mlflow_uri):
    client = tracking.setup()
    names = {a.path for a in client.list_artifacts(trained.run_id)}
    assert {"calibration.png", "shap_summary.png", "calibration.json", "features.json",
            "metrics.json"} <= names
    run = client.get_run(trained.run_id)
    assert run.data.tags["calibration"] == trained.models.calibrator.method
    assert run.data.params["train.calibration_share"] == "0.2"
    version = client.get_model_version(MODEL_NAME, trained.version)
    assert float(version.tags["late_ece"]) == pytest.approx(trained.metrics["late_ece"], abs=1e-6)


def test_gate_needs_both_auc_and_brier(small_params):
    from paycadence.training.train import gate

    champion = {"champion_late_auc": 0.80, "champion_late_brier": 0.15}
    assert gate({"late_auc": 0.81, "late_brier": 0.14}, champion, small_params)[0]
    ok, why = gate({"late_auc": 0.81, "late_brier": 0.16}, champion, small_params)
    assert not ok and "Brier" in why and "challenger" in why
    ok, why = gate({"late_auc": 0.79, "late_brier": 0.14}, champion, small_params)
    assert not ok and "AUC" in why
    assert gate({"late_auc": 0.5, "late_brier": 0.3}, None, small_params)[0]

"""The command line as a user meets it: summaries, formats and one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

BIN = Path(sys.executable).parent / "paycadence"


def run(*args, cwd=None, env=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)


@pytest.mark.parametrize("ext", ["csv", "parquet", "jsonl"])
def test_recommend_writes_every_format(trained, sim_dir, tmp_path, mlflow_uri, tables, ext):
    out = tmp_path / f"recs.{ext}"
    as_of = tables.last_date.isoformat()
    r = run("recommend", "--data", sim_dir, "--as-of", as_of, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"risk:{trained.version}" in r.stdout
    assert "expected cash, next 4 weeks" in r.stdout
    cash = pl.read_csv(tmp_path / "recs-cash-forecast.csv")
    assert cash["week"].to_list() == list(range(1, 14))
    assert cash["start"][0] == as_of and (cash["expected"] >= 0).all()
    if ext == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows and {"debtor_id", "action", "explanation", "propensity"} <= rows[0].keys()
    else:
        frame = pl.read_csv(out) if ext == "csv" else pl.read_parquet(out)
        assert frame.height > 0 and {"debtor_id", "action", "next_review_on"} <= set(
            frame.columns)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "--data", "{sim}", "--as-of", "yesterday", "--out", "{tmp}/r.csv"],
         "--as-of: 'yesterday' is not a date"),
        (["recommend", "--data", "{sim}", "--as-of", "2025-01-01", "--out", "{tmp}/r.xlsx"],
         "unsupported output format"),
        (["train", "--data", "{tmp}/nowhere"], "nowhere"),
        (["train", "--data", "{sim}", "--policy", "{tmp}/bad-policy.yaml"], "unknown key"),
        (["train", "--data", "{sim}", "--features", "{tmp}"], "no snapshots.parquet"),
        (["recommend", "--data", "{sim}", "--as-of", "2025-01-01", "--out", "{tmp}/r.csv",
          "--policy", "{tmp}/late-notice.yaml"],
         "key 'schedule': collection (day 30) must come after final_notice (day 34)"),
    ],
    ids=["bad-date", "bad-format", "missing-dir", "bad-policy", "no-snapshots",
         "collection-before-final-notice"],
)
def test_bad_input_is_one_line_and_exit_2(args, message, sim_dir, tmp_path, mlflow_uri):
    (tmp_path / "bad-policy.yaml").write_text("rules:\n  min_days_between_contact: 3\n")
    (tmp_path / "late-notice.yaml").write_text("schedule:\n  final_notice: 34\n"
                                              "  collection: 30\n")
    r = run(*[a.format(sim=sim_dir, tmp=tmp_path) for a in args])
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_required_column_names_file_and_column(tmp_path, sim_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in sim_dir.glob("*.csv"):
        (bad / f.name).write_text(f.read_text())
    frame = pl.read_csv(bad / "invoices.csv").drop("due_date")
    frame.write_csv(bad / "invoices.csv")
    r = run("ingest", "--data", bad, "--out", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: invoices.csv: required column 'due_date' is missing"


def test_serve_refuses_a_public_address_without_a_token(tmp_path):
    r = run("serve", "--host", "0.0.0.0", "--port", "0", env={"PAYCADENCE_API_TOKEN": ""})
    assert r.returncode == 2
    assert "PAYCADENCE_API_TOKEN" in r.stderr


def test_every_command_has_help():
    for cmd in ("simulate", "ingest", "train", "recommend", "serve", "demo", "models",
                "promote", "evaluate", "backtest"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout


def test_models_lists_versions_and_promote_moves_an_alias(trained, mlflow_uri):
    r = run("models")
    assert r.returncode == 0, r.stderr
    assert "champion" in r.stdout and "p_late AUC" in r.stdout
    r = run("promote", trained.version, "--alias", "reviewed")
    assert r.returncode == 0, r.stderr
    assert f"@reviewed → version {trained.version}" in r.stdout
    assert "PAYCADENCE_MODEL_ALIAS=reviewed" in r.stdout  # the service serves the champion
    r = run("promote", trained.version)
    assert r.returncode == 0, r.stderr
    assert "loads it within 60 s, without a restart" in " ".join(r.stdout.split())
    assert "--service URL checks that it did" in " ".join(r.stdout.split())
    from paycadence.training import tracking
    from paycadence.training.train import MODEL_NAME

    client = tracking.setup()
    assert str(tracking.alias_version(client, MODEL_NAME, "reviewed").version) == trained.version
    r = run("promote", "999")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no version 999" in r.stderr


def test_evaluate_prints_the_three_estimates(trained, tmp_path, mlflow_uri):
    from paycadence.data.simulate import simulate, write_simulation

    # the champion asked about a smaller company's log: every logged decision is replayed
    write_simulation(simulate(30, days=300, seed=4), tmp_path)
    r = run("evaluate", "--data", tmp_path)
    assert r.returncode == 0, r.stderr
    for text in ("logging policy (observed)", "IPS", "self-normalised IPS", "doubly robust",
                 "effective sample size"):
        assert text in r.stdout
    # a verdict on the candidate against the logging policy, with the gain's own interval
    assert any(f"the candidate {v}" in " ".join(r.stdout.split()) for v in (
        "earns more than", "earns less than", "not told apart from"))


def test_evaluate_without_a_decision_log_is_one_line(tmp_path, sim_dir):
    import shutil

    for name in ("debtors.csv", "invoices.csv"):
        shutil.copy(sim_dir / name, tmp_path / name)
    r = run("evaluate", "--data", tmp_path)
    assert r.returncode == 2 and "no decisions.csv" in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_snapshots_are_refused_for_other_data_or_settings(tables, tmp_path):
    from paycadence.config import Params
    from paycadence.errors import InputError
    from paycadence.training.train import cut_tables, load_snapshots, save_snapshots

    params = Params()
    folder, rows = save_snapshots(tables, params, tmp_path / "f")
    assert load_snapshots(folder, tables, params).height == rows
    other = params.model_copy(update={"features": params.features.model_copy(
        update={"snapshot_every_days": 14})})
    with pytest.raises(InputError, match="other features"):
        load_snapshots(folder, tables, other)
    earlier = cut_tables(tables, tables.last_date - dt.timedelta(days=30))
    with pytest.raises(InputError, match="other data_fingerprint"):
        load_snapshots(folder, earlier, params)


def test_ingest_quiet_prints_one_summary_line(sim_dir, tmp_path):
    r = run("ingest", "--data", sim_dir, "--out", tmp_path / "clean", "--quiet")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and "rows kept, 0 quarantined" in lines[0], r.stdout
    assert (tmp_path / "clean" / "decisions.csv").is_file()  # the decision log is kept


def test_backtest_prints_the_oracle_and_what_the_learnt_policy_captured(tmp_path, mlflow_uri):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  n_estimators: 40\n")
    r = run("backtest", "--debtors", 20, "--history-days", 150, "--days", 120, "--seed", 3,
            "--no-ope", "--params", params, "--truth-replays", 10)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "150 days logged, then 120 days from 2024-05-30" in out
    assert "oracle (the simulator's true model, greedy): net value" in out
    assert "captured by the learnt policy" in out
    assert "95% interval over debtors" in out or "undefined (the oracle gains nothing" in out
    assert "learnt policy vs fixed schedule" in out  # the earlier lines stay
    # p_late at first sight beside the best simple reference and the ceiling
    assert re.search(r"p_late of the future's [\d,]+ new invoices, each on the first morning "
                     r"that sees it: AUC 0\.\d{3} against 0\.\d{3} for the best simple reference "
                     r"\((laplace|shrunk|recent)\); the true probability 0\.\d{3}", out), out
    r = run("backtest", "--debtors", 6, "--history-days", 150, "--days", 120, "--seed", 3,
            "--no-ope", "--no-oracle", "--params", params)
    assert r.returncode == 0, r.stderr
    assert "captured" not in r.stdout and "learnt policy vs fixed schedule" in r.stdout

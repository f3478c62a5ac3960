"""One store, two books, no crossing: each named book has its own registered model and
champion; a champion never decides for another company without a word; train learns only
its own book's /feedback rows (paycadence.books)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from paycadence.books import (
    BOOK_TAG,
    SIGNATURE_TAG,
    BookChoice,
    derived_book,
    registered_name,
    shares_debtors,
    signature,
    valid_book,
)
from paycadence.errors import ConfigError, InputError

BIN = Path(sys.executable).parent / "paycadence"


def run(*args, env):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=900)


def test_names_signatures_and_the_check():
    assert valid_book("acme-nl_2") == "acme-nl_2"
    with pytest.raises(ConfigError, match="book name 'a b'"):
        valid_book("a b")
    assert registered_name("paycadence-risk", None) == "paycadence-risk"
    assert registered_name("paycadence-risk", "acme") == "paycadence-risk.acme"
    ours = [f"D{i:05d}" for i in range(500)]
    sig = signature(ours)
    assert len(sig.split()) == 200 and "D00001" not in sig  # hashes, never the ids
    assert shares_debtors(sig, ours[250:]) is True  # a later export of the same book
    assert shares_debtors(sig, [f"X-{i}" for i in range(300)]) is False
    assert shares_debtors(sig, ours[:5]) is None  # too few to tell
    tags = {BOOK_TAG: "acme", SIGNATURE_TAG: sig}
    BookChoice("acme-2026-12").check(tags, ours[100:], "the champion")  # same debtors
    with pytest.raises(InputError, match=r"trained on book 'acme', not on this one \('ibm'"):
        BookChoice("ibm").check(tags, [f"X-{i}" for i in range(300)], "the champion")
    with pytest.raises(InputError, match="--allow-other-book"):
        BookChoice("globex", named=True).check(tags, ours, "the champion")
    BookChoice("globex", named=True, allow_other=True).check(tags, ours, "the champion")


def test_a_clean_folder_keeps_the_book_of_what_it_read(sim_dir, tmp_path):
    out = tmp_path / "CLEAN"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    assert run("ingest", "--data", sim_dir, "--out", out, "-q", env=env).returncode == 0
    assert derived_book(out) == sim_dir.name
    assert run("ingest", "--data", sim_dir, "--out", tmp_path / "C2", "--book", "acme", "-q",
               env=env).returncode == 0
    assert json.loads((tmp_path / "C2" / "summary.json").read_text())["book"] == "acme"


@pytest.fixture(scope="module")
def two_books(tmp_path_factory):
    """Two simulated companies, the second with other debtor ids (as a real second company
    has), one MLflow store and one feedback database for both."""
    from paycadence.data.simulate import simulate, write_simulation

    root = tmp_path_factory.mktemp("books")
    acme, globex = root / "acme", root / "globex"
    write_simulation(simulate(60, days=420, seed=11), acme)
    write_simulation(simulate(60, days=420, seed=12), globex)
    for name in ("debtors", "invoices"):  # Globex's ids are its own
        path = globex / f"{name}.csv"
        frame = pl.read_csv(path, infer_schema=False)
        frame = frame.with_columns(pl.col("debtor_id").str.replace("^D", "G-"))
        if name == "invoices":
            frame = frame.with_columns(pl.col("invoice_id").str.replace("^D", "G-"))
        frame.write_csv(path)
    for name in ("payments", "actions", "disputes"):
        path = globex / f"{name}.csv"
        frame = pl.read_csv(path, infer_schema=False)
        frame.with_columns(pl.col("invoice_id").str.replace("^D", "G-")).write_csv(path)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "PAYCADENCE_DATABASE_URL": f"sqlite:///{root / 'feedback.db'}"}
    return root, acme, globex, env


def test_two_named_books_side_by_side_in_one_store(two_books):
    root, acme, globex, env = two_books
    for book, data in (("acme", acme), ("globex", globex)):
        r = run("train", "--data", data, "--book", book, "-q", env=env)
        assert r.returncode == 0, r.stderr
        assert f"registered paycadence-risk.{book} version 1 (book '{book}') as" in r.stdout
    for book, data in (("acme", acme), ("globex", globex)):
        r = run("recommend", "--data", data, "--book", book, "--as-of", "2025-02-20",
                "--out", root / f"{book}.csv", "-q", env=env)
        assert r.returncode == 0, r.stderr
        assert "(risk:1)" in r.stdout  # each its own version 1
    r = run("models", "--book", "globex", env=env)
    assert r.returncode == 0
    flat = " ".join(r.stdout.split())
    assert "paycadence-risk.globex" in flat and "v1: book globex, data 2024-01-" in flat
    assert "60 debtors" in flat and "fingerprint" in flat and "nan" not in flat
    r = run("recommend", "--data", globex, "--book", "acme", "--as-of", "2025-02-20",
            "--out", root / "x.csv", "-q", env=env)
    assert r.returncode == 0  # the user says this is Acme's book: its model decides


def test_a_champion_of_another_company_is_refused_without_a_name(two_books, tmp_path):
    """Before: the IBM report decided with the model trained on the simulated company."""
    root, acme, globex, env = two_books
    env = env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'one.db'}"}
    r = run("train", "--data", acme, "-q", env=env)
    assert r.returncode == 0, r.stderr
    for call in (("recommend", "--out", tmp_path / "r.csv"),
                 ("report", "--out", tmp_path / "r.html")):
        r = run(*call, "--data", globex, "--as-of", "2025-02-20", "-q", env=env)
        assert r.returncode == 2, r.stdout
        assert r.stderr.strip().splitlines()[-1] == (
            "error: the champion paycadence-risk version 1 was trained on book 'acme', not on "
            "this one ('globex', no debtor in common): train on this book first, give each "
            "book its own name with --book (one registered model each), or pass "
            "--allow-other-book to use it anyway")
    r = run("recommend", "--data", globex, "--as-of", "2025-02-20", "--out", tmp_path / "r.csv",
            "-q", "--allow-other-book", env=env)
    assert r.returncode == 0, r.stderr
    later = tmp_path / "acme-2026-02"  # the same company's export in another folder: fine
    shutil.copytree(acme, later)
    r = run("recommend", "--data", later, "--as-of", "2025-02-20", "--out", tmp_path / "a.csv",
            "-q", env=env)
    assert r.returncode == 0, r.stderr
    r = run("train", "--data", globex, "-q", env=env)  # would replace Acme's champion
    assert r.returncode == 2 and "trained on book 'acme'" in r.stderr
    r = run("serve", "--port", "0", "--data", globex, env=env)  # refused before it listens
    assert r.returncode == 2 and "trained on book 'acme'" in r.stderr


def test_train_learns_only_its_own_books_feedback(two_books, tables, tmp_path):
    from paycadence.serving.store import FeedbackStore, merge_feedback

    url = f"sqlite:///{tmp_path / 'fb.db'}"
    store = FeedbackStore(url)
    inv = tables.invoices.row(0, named=True)
    store.add({"invoices": [{"invoice_id": "OTHER-1", "debtor_id": "G-other", "issue_date":
                             inv["issue_date"], "due_date": inv["due_date"], "amount": 5.0,
                             "currency": "EUR"},
                            {"invoice_id": "OWN-1", "debtor_id": inv["debtor_id"], "issue_date":
                             inv["issue_date"], "due_date": inv["due_date"], "amount": 7.0,
                             "currency": "EUR"}],
               "payments": [{"invoice_id": "OTHER-1", "paid_on": inv["due_date"],
                             "amount": 5.0}]})
    store.close()
    merged, added = merge_feedback(tables, url)
    assert added["invoices"] == 1 and added["left_out"] == 2
    assert "OWN-1" in merged.invoices["invoice_id"].to_list()
    assert "OTHER-1" not in merged.invoices["invoice_id"].to_list()

"""Build /recommend requests from tables, as a dunning engine would; feedback databases on
SQLite and on a real PostgreSQL server started by scripts/postgres.sh."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from paycadence.data import Tables, known_as_of
from paycadence.features import invoice_features


def _iso(rows: list[dict]) -> list[dict]:
    return [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()}
            for r in rows]


def request_for(tables: Tables, as_of: dt.date, *, stateless: bool, limit: int | None = None):
    """A request for every debtor with an open invoice on ``as_of`` (stateless: with history)."""
    feats = invoice_features(tables, as_of=as_of)
    debtor_ids = feats["debtor_id"].unique(maintain_order=True).to_list()[:limit]
    debtors = []
    for debtor_id in debtor_ids:
        mine = feats.filter(pl.col("debtor_id") == debtor_id)
        entry = {
            "debtor_id": debtor_id,
            "open_invoices": [
                {"invoice_id": r["invoice_id"], "issue_date": (as_of - dt.timedelta(
                    days=int(r["age_days"]))).isoformat(),
                 "due_date": r["due_date"].isoformat(), "amount": r["amount"],
                 "amount_paid": round(r["amount"] - r["open_amount"], 2)}
                for r in mine.to_dicts()
            ],
        }
        if stateless:
            own = tables.for_debtors([debtor_id])
            entry["history"] = {
                name: _iso(known_as_of(getattr(own, name), as_of, table=name).select(
                    [c for c in getattr(own, name).columns if c != "debtor_id"
                     or name == "invoices"]).to_dicts())
                for name in ("invoices", "payments", "actions", "disputes")
            }
            opted = own.debtors["opted_out"].to_list()
            entry["opted_out"] = [c for c in (opted[0] or "").split(";") if c] if opted else []
            if own.debtors.height:
                entry["segment"] = own.debtors["segment"][0]
                entry["country"] = own.debtors["country"][0]
                created = own.debtors["created_on"][0]
                entry["created_on"] = created.isoformat() if created else None
        debtors.append(entry)
    return {"as_of": as_of.isoformat(), "debtors": debtors}


@pytest.fixture(scope="session")
def build_request():
    """``request_for(tables, as_of, stateless=..., limit=...)`` as a fixture."""
    return request_for


# --- feedback databases: SQLite and a real PostgreSQL server ---------------------------------

POSTGRES_SH = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
#: Tests on the PostgreSQL server run on one xdist worker (--dist loadgroup), so that a run
#: starts one server; each worker still gets its own folder and port if it needs one.
ON_POSTGRES = pytest.mark.xdist_group("postgres")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=ON_POSTGRES)]


def postgres_sh(*args: str, timeout: float = 900) -> str:
    """Run ``scripts/postgres.sh ARGS``; its stdout, or a test failure quoting its stderr."""
    try:
        done = subprocess.run(["bash", str(POSTGRES_SH), *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/postgres.sh {' '.join(args)} took over {timeout:.0f} s")
    if done.returncode != 0:
        pytest.fail(f"scripts/postgres.sh {' '.join(args)} failed (exit {done.returncode}): "
                    f"{done.stderr.strip() or done.stdout.strip()}", pytrace=False)
    return done.stdout.strip()


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL server started by scripts/postgres.sh in ``folder``."""

    folder: Path
    url: str  # of its 'paycadence' database

    def crash(self) -> None:
        """Stop it as a crash would (no checkpoint)."""
        postgres_sh("crash", str(self.folder))

    def restart(self) -> None:
        assert postgres_sh("start", str(self.folder)) == self.url, "the restart kept its port"


@pytest.fixture(scope="session")
def postgres(worker_id) -> Postgres:
    """One throwaway PostgreSQL server per xdist worker, started (and installed when missing)
    by scripts/postgres.sh. It cannot be skipped: when it cannot start, the tests fail."""
    # not under pytest's tmp_path: that folder is closed to the postgres user the server runs as
    folder = Path(tempfile.mkdtemp(prefix=f"paycadence-pg-{worker_id}-", dir="/tmp"))
    try:
        url = postgres_sh("start", str(folder))
        yield Postgres(folder, url)
    finally:
        postgres_sh("stop", str(folder), timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres) -> str:
    """A new empty database on the session's PostgreSQL server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(sa.make_url(postgres.url).set(database="postgres"),
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield str(sa.make_url(postgres.url).set(database=name).render_as_string(
            hide_password=False))
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    """An empty feedback database: a SQLite file, then a database on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="module")
def fallback_env(tmp_path_factory):
    """An empty MLflow store: the app serves the rule-based fallback (no training needed)."""
    path = tmp_path_factory.mktemp("mlflow-empty") / "mlflow.db"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    ours = os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{path}"
    yield
    # a session fixture (mlflow_uri) may have pointed it at the session's store since: leave
    # that in place, or every later test of this worker looks for models in ./mlflow.db
    if os.environ.get("MLFLOW_TRACKING_URI") != ours:
        return
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture
def make_client(fallback_env, tmp_path):
    """``make_client(**settings)`` → a started in-process TestClient on a fresh app (its own
    SQLite feedback file)."""
    from fastapi.testclient import TestClient

    from paycadence.config import Settings
    from paycadence.serving.app import create_app

    clients = []

    def make(**fields) -> TestClient:
        db = tmp_path / f"fb{len(clients)}.db"
        settings = Settings(**({"database_url": f"sqlite:///{db}"} | fields))
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)

"""No secret leaves the process (issue 19, item 2).

The attack as reported: with ``MLFLOW_TRACKING_URI=postgresql://user:PASSWORD@host/db`` the
unauthenticated ``/health`` showed the password (the "no model … in <uri>" detail), and the
same text reached the HTML report, ``train`` and ``models``. Here the tracking store is a
real PostgreSQL database reached with a password in its URI (the test server trusts loopback,
so any password connects): the password must appear in no response, no log line, no printed
line, no MLflow tag or parameter and no report.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from paycadence.redact import RedactingFormatter, redact, redact_log_handlers

ON_POSTGRES = pytest.mark.xdist_group("postgres")
SECRET = "Hunter2-s3cret-PASSWORD"
TOKEN = "t0ken-for-the-health-detail"
PAYCADENCE = str(Path(sys.executable).parent / "paycadence")


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://app:s3cret@db:5432/ar", "postgresql://app:***@db:5432/ar"),
    ("postgresql+psycopg://u:p@ss@h/d?sslmode=require",
     "postgresql+psycopg://u:***@h/d?sslmode=require"),
    ("no model x in mysql://root:pw@127.0.0.1/m: gone",
     "no model x in mysql://root:***@127.0.0.1/m: gone"),
    ("https://store/a.bin?X-Amz-Signature=abc&v=1", "https://store/a.bin?X-Amz-Signature=***&v=1"),
    ("host=db password=hunter2 user=x", "host=db password=*** user=x"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("http://user@host/x", "http://user@host/x"),
])
def test_redact_masks_credentials_and_nothing_else(text, shown):
    assert redact(text) == shown


def test_a_log_line_is_redacted_whoever_logs_it(capsys):
    logger = logging.getLogger("paycadence.test.secrets")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact_log_handlers(logger)
        assert isinstance(handler.formatter, RedactingFormatter)
        try:
            raise RuntimeError(f"cannot reach postgresql://u:{SECRET}@db/x")
        except RuntimeError:
            logger.exception("store at %s failed", f"postgresql://u:{SECRET}@db/x")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "ERROR store at postgresql://u:***@db/x failed" in err
    assert "RuntimeError" in err and SECRET not in err


@pytest.fixture
def secret_tracking_uri(postgres_url) -> str:
    """A fresh database on the session's PostgreSQL server, its URI carrying a password."""
    return sa.make_url(postgres_url).set(password=SECRET).render_as_string(hide_password=False)


def _env(tracking_uri: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYCADENCE_")}
    return env | {"MLFLOW_TRACKING_URI": tracking_uri,
                  "PAYCADENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.db'}"}


def _cli(*args, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PAYCADENCE, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False)


@ON_POSTGRES
def test_health_logs_cli_tags_and_report_never_show_the_password(
        secret_tracking_uri, start_server, clean_dir, sim_dir, tmp_path):
    env = _env(secret_tracking_uri, tmp_path) | {"PAYCADENCE_API_TOKEN": TOKEN}
    log = tmp_path / "server.log"
    # no model registered in that store yet: the message names the store it looked in
    srv = start_server(env, clean_dir, log)
    try:
        open_health = httpx.get(f"{srv.url}/health").json()
        with_token = httpx.get(f"{srv.url}/health",
                               headers={"Authorization": f"Bearer {TOKEN}"}).json()
    finally:
        srv.stop()
    assert open_health["status"] == "degraded" and open_health["reason"] == "no_model"
    assert open_health["model_version"] == "fallback"
    # a stranger learns the status and a fixed sentence, never where or what the store is
    assert "postgresql" not in json.dumps(open_health) and "/" not in open_health["detail"]
    # the operator, with the token, learns which model it looked for (never a URI or a path)
    assert "paycadence-risk@champion" in with_token["detail"]
    assert SECRET not in json.dumps(with_token)
    assert "postgresql" not in with_token["detail"]
    assert SECRET not in log.read_text()

    # train prints where the run went; models lists the store; both with the password masked
    params = tmp_path / "params.yaml"
    small = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    small["train"]["n_estimators"] = 20  # the point is what is printed, not the model
    small["train"]["ope_max_debtors"] = 20
    params.write_text(yaml.safe_dump(small))
    trained = _cli("train", "--data", sim_dir, "--params", params, env=env, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    # with the decision log, train says whether the new policy earns more than the log's
    flat = " ".join(trained.stdout.split())
    assert any(f"this model's policy {v}" in flat for v in (
        "earns more than", "earns less than", "not told apart from")), flat[-1500:]
    listed = _cli("models", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    for done in (trained, listed):
        assert SECRET not in done.stdout + done.stderr
    assert "***@" in trained.stdout and "***@" in listed.stdout

    # nothing the run stored in MLflow holds it either
    from mlflow.tracking import MlflowClient

    client = MlflowClient(secret_tracking_uri, secret_tracking_uri)
    for run in client.search_runs(client.get_experiment_by_name("paycadence").experiment_id):
        assert SECRET not in json.dumps([run.data.tags, run.data.params])
    for version in client.search_model_versions("name = 'paycadence-risk'"):
        assert SECRET not in json.dumps(version.tags)

    report = tmp_path / "report.html"
    as_of = "2025-06-01"
    made = _cli("report", "--data", sim_dir, "--as-of", as_of, "--out", report, "--quiet",
                env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    assert SECRET not in report.read_text(encoding="utf-8") + made.stdout + made.stderr


def test_a_cli_error_naming_the_store_is_redacted(tmp_path):
    """A store that cannot be reached: one error line, the password masked."""
    env = _env(f"postgresql://user:{SECRET}@127.0.0.1:1/nothing", tmp_path)
    done = _cli("promote", "1", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert SECRET not in done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr

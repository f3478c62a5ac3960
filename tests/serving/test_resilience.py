"""Never an outage from a model: missing, corrupt or failing models fall back to the rule-based
schedule, /health says so, and a promotion is served without a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from paycadence.config import Policy
from paycadence.guard import audit_actions
from paycadence.serving.engine import Engine
from paycadence.serving.schemas import DebtorIn


def _register_copy(name: str, workdir: Path, *, corrupt: bool = False) -> str:
    """Log the session's champion again as a new run, registered under ``name`` and made its
    champion; with ``corrupt`` its booster file is garbage. Returns the version."""
    import shutil
    from importlib.util import find_spec

    import mlflow

    from paycadence.training import tracking

    source, _ = tracking.download_model("paycadence-risk", "champion")
    copy = workdir / "risk"
    shutil.copytree(source, copy, dirs_exist_ok=True)
    if corrupt:
        (copy / "late.txt").write_text("tree\nthis is not a LightGBM model\n", encoding="utf-8")
    tracking.setup()
    with mlflow.start_run(run_name=f"copy for {name}"):
        info = mlflow.pyfunc.log_model(
            name="risk", python_model=find_spec("paycadence.models.pyfunc").origin,
            artifacts={"risk": str(copy)}, registered_model_name=name)
    version = str(info.registered_model_version)
    tracking.promote(name, version, "champion")
    return version


def _request(tables, as_of, build_request, limit=20):
    return build_request(tables, as_of, stateless=True, limit=limit)


@pytest.mark.xdist_group("registry")
def test_a_missing_champion_serves_the_fallback(start_server, server_env, clean_dir, tables,
                                                build_request, response_schema, tmp_path):
    import jsonschema

    env = server_env | {"PAYCADENCE_MODEL_NAME": "paycadence-nothing-registered"}
    srv = start_server(env, clean_dir, tmp_path / "server.log")
    try:
        health = httpx.get(f"{srv.url}/health").json()
        assert health["status"] == "degraded" and health["model_version"] == "fallback"
        assert health["reason"] == "no_model" and "fallback" in health["detail"]
        as_of = tables.last_date
        body = _request(tables, as_of, build_request)
        answer = httpx.post(f"{srv.url}/recommend", json=body, timeout=60)
        assert answer.status_code == 200
        jsonschema.validate(answer.json(), response_schema)
        recs = answer.json()["recommendations"]
        assert {r["model_version"] for r in recs} == {"fallback"}
        assert len(recs) == len(body["debtors"])
    finally:
        srv.stop()
    log = (tmp_path / "server.log").read_text()
    assert "rule-based fallback" in log and "not loaded" in log


def test_a_model_failing_at_predict_time_falls_back_and_health_says_so(trained, tables,
                                                                       build_request):
    engine = Engine.load(Policy(), model_name="paycadence-risk", alias="champion")
    assert engine.models is not None and not engine.degraded
    engine.models.boosters["late"] = None  # a model object broken after loading
    as_of = tables.last_date
    debtors = [DebtorIn.model_validate(d) for d in
               _request(tables, as_of, build_request, limit=10)["debtors"]]
    recs = engine.recommend(as_of, debtors)
    assert {r["model_version"] for r in recs} == {"fallback"}
    assert engine.degraded and "failed at predict time" in engine.failing
    history = tables.for_debtors([d.debtor_id for d in debtors])
    rows = [{"invoice_id": i, "sent_on": as_of, "channel": r["action"]}
            for r in recs if r["action"] != "wait" for i in r["invoice_ids"]]
    actions = history.actions.to_dicts() + rows
    assert audit_actions(actions, history.invoices.to_dicts(), history.disputes.to_dicts(),
                         history.debtors.to_dicts(), Policy()) == []


@pytest.mark.xdist_group("registry")
def test_a_corrupt_champion_serves_the_fallback(trained, mlflow_uri, tables, build_request,
                                                tmp_path):
    name = "paycadence-corrupt"
    _register_copy(name, tmp_path, corrupt=True)
    engine = Engine.load(Policy(), model_name=name, alias="champion")
    assert engine.models is None and engine.degraded
    assert engine.version == "fallback" and "fallback" in engine.detail
    as_of = tables.last_date
    debtors = [DebtorIn.model_validate(d) for d in
               _request(tables, as_of, build_request, limit=5)["debtors"]]
    assert {r["model_version"] for r in engine.recommend(as_of, debtors)} == {"fallback"}


@pytest.mark.xdist_group("registry")
def test_a_promotion_is_served_without_a_restart(trained, start_server, server_env,
                                                 clean_dir, tmp_path, until):
    """The service watches the alias: moving ``champion`` to another version is served within
    a few seconds, without a restart (here on its own model name)."""
    name = "paycadence-reload"
    first = _register_copy(name, tmp_path / "first")
    env = server_env | {"PAYCADENCE_MODEL_NAME": name, "PAYCADENCE_MODEL_REFRESH_SECONDS": "1"}
    srv = start_server(env, clean_dir, tmp_path / "server.log")
    try:
        assert httpx.get(f"{srv.url}/health").json()["model_version"] == f"risk:{first}"
        second = _register_copy(name, tmp_path / "second")
        assert second != first
        until(lambda: httpx.get(f"{srv.url}/health").json()["model_version"]
              == f"risk:{second}", f"the server to serve version {second} after the "
              "promotion", timeout=90, every=0.5, log=tmp_path / "server.log")
    finally:
        srv.stop()
    assert "moved to version" in (tmp_path / "server.log").read_text()


@pytest.mark.xdist_group("registry")
def test_promote_with_service_says_what_the_running_service_serves(
        trained, start_server, server_env, clean_dir, tmp_path):
    """``paycadence promote V --service URL`` waits for the running service's /health to
    serve V and says so; where the service serves another alias, it fails saying what the
    service still serves, instead of promising a reload that will not come."""
    import subprocess
    import sys

    name = "paycadence-promote"
    first = _register_copy(name, tmp_path / "first")
    second = _register_copy(name, tmp_path / "second")  # the champion now
    env = server_env | {"PAYCADENCE_MODEL_NAME": name, "PAYCADENCE_MODEL_REFRESH_SECONDS": "1"}
    srv = start_server(env, clean_dir, tmp_path / "server.log")
    cli = [str(Path(sys.executable).parent / "paycadence"), "promote"]
    try:
        assert httpx.get(f"{srv.url}/health").json()["model_version"] == f"risk:{second}"
        moved = subprocess.run([*cli, first, "--service", srv.url], env=env,
                               capture_output=True, text=True, timeout=120)
        assert moved.returncode == 0, moved.stderr
        assert f"the service at {srv.url} now serves risk:{first}" in moved.stdout
        elsewhere = subprocess.run([*cli, second, "--alias", "reviewed", "--service", srv.url,
                                    "--wait", "3"], env=env, capture_output=True, text=True,
                                   timeout=120)
        assert elsewhere.returncode != 0, elsewhere.stdout
        assert f"still serves risk:{first}" in elsewhere.stderr, elsewhere.stderr
        assert elsewhere.stderr.strip().count("\n") == 0
    finally:
        srv.stop()

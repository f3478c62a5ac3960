"""Damaged and NaN-producing models (issue 19, items 1 and 5), on real LightGBM files and real
``paycadence serve`` processes: LightGBM aborts or crashes on some damage and accepts some
truncations silently, so each kind of damage is shown first to hurt LightGBM itself, then to be
refused by the check meant for it, and the service to keep answering."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from paycadence.models import ModelFilesError, NonFiniteForecastError, RiskModels
from paycadence.models import files as model_files
from paycadence.models.hazard import N_BINS, every_bin
from paycadence.training import tracking

pytestmark = pytest.mark.xdist_group("registry")
CHAMPION = "paycadence-risk"
PAYCADENCE = str(Path(sys.executable).parent / "paycadence")


# --- damage, done to real files ---------------------------------------------------------------

def _fix_sizes(text: str) -> str:
    """The header's ``tree_sizes`` made to match the trees again (after an edit inside one)."""
    head, rest = text.split("\nTree=", 1)
    trees, tail = ("Tree=" + rest).split("end of trees", 1)
    sections = [t for t in re.split(r"(?m)^(?=Tree=)", trees) if t]
    sizes = " ".join(str(len(t.encode())) for t in sections)
    head = re.sub(r"(?m)^tree_sizes=.*$", "tree_sizes=" + sizes, head)
    return head + "\n" + "".join(sections) + "end of trees" + tail


def _set_leaves(text: str, tree: int, leaves, value: str = "nan") -> str:
    """``leaf_value`` of ``leaves`` (indices; None: all) of tree ``tree`` set to ``value``."""
    sections = re.split(r"(?m)^(?=Tree=)", text)
    for i, section in enumerate(sections):
        if section.startswith(f"Tree={tree}\n"):
            line = re.search(r"(?m)^leaf_value=(.*)$", section)
            values = line.group(1).split()
            for k in range(len(values)) if leaves is None else leaves:
                values[k] = value
            sections[i] = section.replace(line.group(0), "leaf_value=" + " ".join(values))
    return _fix_sizes("".join(sections))


def _truncate_in_trees(data: bytes) -> bytes:
    return data[:len(data) // 2]  # LightGBM aborts (SIGABRT) or crashes (SIGSEGV) on it


def _truncate_tail(data: bytes) -> bytes:
    return data[:data.index(b"\nparameters:") + 1]  # LightGBM reads it without a word


def _drop_leaf_weight(data: bytes) -> bytes:
    """One value less in tree 0's ``leaf_weight``, sizes fixed: structurally whole, yet
    LightGBM aborts while parsing it."""
    text = re.sub(r"(?m)^(leaf_weight=.*) \S+$", r"\1", data.decode(), count=1)
    return _fix_sizes(text).encode()


def _garbage(data: bytes) -> bytes:
    return np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()


def _nan_leaves(data: bytes) -> bytes:
    return _set_leaves(data.decode(), 0, None).encode()


def lightgbm_reads(path: Path) -> int:
    """Exit code of a fresh interpreter that reads ``path`` with LightGBM and predicts."""
    code = ("import sys, numpy, lightgbm; b = lightgbm.Booster(model_file=sys.argv[1]); "
            "p = b.predict(numpy.zeros((2, b.num_feature()))); "
            "sys.exit(0 if numpy.isfinite(p).all() else 7)")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          timeout=120, check=False).returncode


@pytest.fixture(scope="module")
def champion_dir(trained, tmp_path_factory) -> Path:
    """The session champion's risk folder (saved with ``checksums.json``)."""
    source, _ = tracking.download_model(CHAMPION, "champion")
    out = tmp_path_factory.mktemp("champion") / "risk"
    shutil.copytree(source, out)
    assert (out / model_files.CHECKSUMS).is_file()
    return out


@pytest.fixture(scope="module")
def example(trained):
    source, _ = tracking.download_model(CHAMPION, "champion")
    found = tracking.input_example(source)
    assert found is not None and len(found)
    return found


def _copy(champion_dir: Path, where: Path, *, legacy: bool = False) -> Path:
    out = where / "risk"
    shutil.copytree(champion_dir, out)
    if legacy:  # as saved before checksums existed
        (out / model_files.CHECKSUMS).unlink()
    return out


def _reseal(folder: Path) -> None:
    """Record the files' current checksums: a model registered as it is (e.g. NaN leaves)."""
    sums = model_files.checksums(folder, [p.name for p in folder.iterdir()
                                          if p.name != model_files.CHECKSUMS])
    (folder / model_files.CHECKSUMS).write_text(json.dumps({"sha256": sums}))


# --- which check catches which damage (in process) --------------------------------------------

DAMAGE = [
    # (id, damage to late.txt, what LightGBM alone does, checksums recorded?, refused with)
    ("truncated-in-trees", _truncate_in_trees, "dies", True, "sha256 differs"),
    ("truncated-in-trees-legacy", _truncate_in_trees, "dies", False, "truncated"),
    ("truncated-tail-legacy", _truncate_tail, "reads", False, "last line is missing"),
    ("garbage", _garbage, "refuses", True, "sha256 differs"),
    ("garbage-legacy", _garbage, "refuses", False, "not a LightGBM text model"),
    ("leaf-weight-short-legacy", _drop_leaf_weight, "dies", False,
     "LightGBM crashed reading it (SIGABRT) in a child process"),
    ("nan-leaves-registered", _nan_leaves, "nan", "reseal", "p_late is not finite"),
]


@pytest.mark.parametrize(("damage", "alone", "sealed", "message"),
                         [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_each_damage_hurts_lightgbm_and_is_refused_by_its_check(
        champion_dir, example, tmp_path, damage, alone, sealed, message):
    folder = _copy(champion_dir, tmp_path, legacy=not sealed)
    late = folder / "late.txt"
    late.write_bytes(damage(late.read_bytes()))
    if sealed == "reseal":
        _reseal(folder)
    # the fault: LightGBM on its own
    rc = lightgbm_reads(late)
    if alone == "dies":
        assert rc in (-signal.SIGABRT, -signal.SIGSEGV, 134, 139), rc
    elif alone == "reads":
        assert rc == 0
    elif alone == "nan":
        assert rc == 7
    else:
        assert rc == 1
    # the fix: refused before this process's LightGBM reads it, naming the file, not a path
    error = NonFiniteForecastError if sealed == "reseal" else ModelFilesError
    with pytest.raises(error, match=re.escape(message)) as caught:
        RiskModels.load(folder, probe=example)
    assert str(tmp_path) not in str(caught.value)


def test_a_valid_file_of_another_model_is_refused(champion_dir, tmp_path):
    sealed = _copy(champion_dir, tmp_path / "sealed")
    shutil.copy(sealed / "response.txt", sealed / "late.txt")
    with pytest.raises(ModelFilesError, match="late.txt: sha256 differs"):
        RiskModels.load(sealed)
    legacy = _copy(champion_dir, tmp_path / "legacy", legacy=True)
    shutil.copy(legacy / "hazard.txt", legacy / "late.txt")
    with pytest.raises(ModelFilesError, match="trained on other features"):
        RiskModels.load(legacy)


def test_a_model_saved_before_checksums_still_loads(champion_dir, example, tmp_path):
    legacy = RiskModels.load(_copy(champion_dir, tmp_path, legacy=True), probe=example)
    sealed = RiskModels.load(champion_dir, probe=example)
    X = sealed.matrix(pl.from_pandas(example))
    assert np.array_equal(legacy.predict_matrix(X).p_late, sealed.predict_matrix(X).p_late)


# --- registry helpers -------------------------------------------------------------------------

def _register(name: str, folder: Path, example, *, legacy: bool = False) -> str:
    """Register ``folder`` as a new version of ``name`` (not promoted); returns the version."""
    import mlflow

    tracking.setup()
    with mlflow.start_run(run_name=f"fault test {name}"):
        if legacy:  # as registered before this change: no checksums, no tag
            from importlib.util import find_spec

            info = mlflow.pyfunc.log_model(
                name="risk", python_model=find_spec("paycadence.models.pyfunc").origin,
                artifacts={"risk": str(folder)}, input_example=example,
                registered_model_name=name)
            return str(info.registered_model_version)
        return tracking.log_model(folder, model_name=name, example=example)


def _stored_files(name: str, version: str) -> Path:
    """The registered model's risk folder inside the artifact store (damaged in place)."""
    uri = tracking.setup().get_model_version_download_uri(name, version)
    assert uri.startswith("file://"), uri
    [late] = list(Path(uri.removeprefix("file://")).glob("**/risk/late.txt"))
    return late.parent


def _health(srv) -> dict:
    return httpx.get(f"{srv.url}/health", timeout=10).json()


def _post(srv, body) -> httpx.Response:
    return httpx.post(f"{srv.url}/recommend", json=body, timeout=120)


def _no_nulls(recs: list[dict]) -> None:
    for rec in recs:
        for key in ("p_late", "expected_days_late", "p_unpaid_90d"):
            assert isinstance(rec["risk"][key], float | int), (key, rec["risk"])
            assert np.isfinite(rec["risk"][key])


# --- start-up ---------------------------------------------------------------------------------

START = [
    ("truncated-checksummed", _truncate_in_trees, False, "after", "model_invalid",
     "sha256 differs"),
    ("leaf-weight-short-legacy", _drop_leaf_weight, True, "before", "model_invalid",
     "SIGABRT"),
    ("nan-leaves", _nan_leaves, False, "before", "model_output_not_finite", "not finite"),
]


@pytest.mark.parametrize(("damage", "legacy", "when", "code", "logged"),
                         [s[1:] for s in START], ids=[s[0] for s in START])
def test_a_damaged_champion_at_start_up_serves_the_fallback(
        champion_dir, example, mlflow_uri, server_env, clean_dir, tables, build_request,
        response_schema, start_server, tmp_path, damage, legacy, when, code, logged):
    import jsonschema

    name = f"paycadence-start-{code}-{'legacy' if legacy else 'sealed'}-{when}"
    folder = _copy(champion_dir, tmp_path / "files", legacy=legacy)
    if when == "before":  # registered so (a NaN model's checksums are its own)
        (folder / "late.txt").write_bytes(damage((folder / "late.txt").read_bytes()))
        if not legacy:
            _reseal(folder)
    version = _register(name, folder, example, legacy=legacy)
    if when == "after":  # damaged in the artifact store after registration
        late = _stored_files(name, version) / "late.txt"
        late.write_bytes(damage(late.read_bytes()))
    tracking.promote(name, version)
    log = tmp_path / "server.log"
    srv = start_server(server_env | {"PAYCADENCE_MODEL_NAME": name,
                                     "PAYCADENCE_MODEL_REFRESH_SECONDS": "0"}, clean_dir, log)
    try:
        health = _health(srv)
        assert health["status"] == "degraded" and health["model_version"] == "fallback"
        assert health["reason"] == code
        assert str(tmp_path) not in json.dumps(health) and "sqlite" not in json.dumps(health)
        body = build_request(tables, tables.last_date, stateless=True, limit=10)
        answer = _post(srv, body)
        assert answer.status_code == 200
        jsonschema.validate(answer.json(), response_schema)
        assert {r["model_version"] for r in answer.json()["recommendations"]} == {"fallback"}
        assert srv.proc.poll() is None
    finally:
        srv.stop()
    text = log.read_text()
    assert f"not loaded ({code}" in text and logged in text and "rule-based fallback" in text


# --- promotion of a damaged version to a running service --------------------------------------

def test_a_damaged_promotion_keeps_the_previous_model(
        champion_dir, example, mlflow_uri, server_env, clean_dir, tables, build_request,
        start_server, tmp_path, until):
    name = "paycadence-promote-damaged"
    first = _register(name, _copy(champion_dir, tmp_path / "first"), example)
    tracking.promote(name, first)
    log = tmp_path / "server.log"
    srv = start_server(server_env | {"PAYCADENCE_MODEL_NAME": name,
                                     "PAYCADENCE_MODEL_REFRESH_SECONDS": "1"}, clean_dir, log)
    body = build_request(tables, tables.last_date, stateless=True, limit=5)
    try:
        assert _health(srv)["model_version"] == f"risk:{first}"
        assert _health(srv)["reason"] == "ok"
        # a checksummed version whose booster is truncated in the store: the checksum
        second = _register(name, _copy(champion_dir, tmp_path / "second"), example)
        late = _stored_files(name, second) / "late.txt"
        late.write_bytes(_truncate_in_trees(late.read_bytes()))
        tracking.promote(name, second)
        until(lambda: _health(srv)["reason"] == "reload_failed", "the reload to fail",
              timeout=90, every=0.5, log=log)
        # a version registered before checksums, whose file LightGBM aborts on: the child
        folder = _copy(champion_dir, tmp_path / "third", legacy=True)
        (folder / "late.txt").write_bytes(_drop_leaf_weight((folder / "late.txt").read_bytes()))
        third = _register(name, folder, example, legacy=True)
        tracking.promote(name, third)
        until(lambda: f"version {third} of {name}@champion refused" in log.read_text(),
              "the third version to be refused", timeout=90, every=0.5, log=log)
        # a NaN-producing version, registered with its own checksums: the output check
        folder = _copy(champion_dir, tmp_path / "fourth")
        (folder / "late.txt").write_bytes(_nan_leaves((folder / "late.txt").read_bytes()))
        _reseal(folder)
        fourth = _register(name, folder, example)
        tracking.promote(name, fourth)
        until(lambda: f"version {fourth} of {name}@champion refused" in log.read_text(),
              "the fourth version to be refused", timeout=90, every=0.5, log=log)
        assert srv.proc.poll() is None, "the service died"
        health = _health(srv)
        assert health["status"] == "degraded" and health["reason"] == "reload_failed"
        assert health["model_version"] == f"risk:{first}"
        answer = _post(srv, body)
        assert answer.status_code == 200
        assert {r["model_version"] for r in answer.json()["recommendations"]} == \
            {f"risk:{first}"}
        # the alias back on the version served: healthy again, without a reload
        tracking.promote(name, first)
        until(lambda: _health(srv)["reason"] == "ok", "the service to be healthy again",
              timeout=90, every=0.5, log=log)
        health = _health(srv)
        assert health["status"] == "ok" and health["model_version"] == f"risk:{first}"
    finally:
        srv.stop()
    text = log.read_text()
    assert f"version {second} of {name}@champion refused (model_invalid: late.txt: sha256 " \
           "differs" in text
    assert f"version {third} of {name}@champion refused (model_invalid: late.txt: LightGBM " \
           "crashed reading it (SIGABRT)" in text
    assert f"version {fourth} of {name}@champion refused (model_output_not_finite" in text
    assert text.count(f"version {second} of {name}@champion refused") == 1  # not retried


# --- a forecast that turns non-finite at predict time -----------------------------------------

def _leaf_hit_only_by_served_rows(models: RiskModels, served: np.ndarray, probe) -> tuple:
    """A (tree, leaf) of the settlement (``hazard``) booster that the person-period rows of
    some ``served`` invoices reach and those of no probe row (the input example, a zeros row,
    a missing-values row) do, and which invoices reach it. (A NaN leaf of the ``late``
    booster is refused at load whatever rows reach it: its SHAP values are all NaN.)"""
    d = len(models.features)
    extra = np.vstack([np.zeros(d), np.full(d, np.nan)])
    extra[1, models.features.index("days_past_due")] = 0.0
    X_probe = np.vstack([models.matrix(pl.from_pandas(probe)), extra])
    due = models.features.index("days_past_due")
    booster = models.boosters["hazard"]
    probed = booster.predict(every_bin(X_probe, X_probe[:, due]), pred_leaf=True)
    hit = booster.predict(every_bin(served, served[:, due]), pred_leaf=True)
    best = None
    for tree in range(hit.shape[1]):
        for leaf in np.unique(hit[:, tree]):
            n = int((hit[:, tree] == leaf).sum())
            if leaf not in probed[:, tree] and (best is None or n > best[2]):
                best = (tree, int(leaf), n)
    assert best is not None, "every leaf reached by the served rows is probed"
    return best[:2], (hit[:, best[0]] == best[1]).reshape(-1, N_BINS).any(axis=1)


def test_a_non_finite_forecast_at_predict_time_falls_back_for_that_call(
        champion_dir, example, server_env, clean_dir, tables, response_schema, start_server,
        tmp_path, until):
    import jsonschema

    from paycadence.features import invoice_features

    name = "paycadence-nan-at-predict"
    as_of = tables.last_date
    models = RiskModels.load(champion_dir)
    feats = invoice_features(tables, as_of=as_of)
    (tree, leaf), reached = _leaf_hit_only_by_served_rows(models, models.matrix(feats), example)
    bad = set(feats.filter(pl.Series(reached))["debtor_id"].to_list())
    good = [d for d in feats["debtor_id"].unique(maintain_order=True).to_list()
            if d not in bad][:5]
    folder = _copy(champion_dir, tmp_path / "files")
    (folder / "hazard.txt").write_text(_set_leaves((folder / "hazard.txt").read_text(), tree,
                                                   [leaf]))
    _reseal(folder)
    tracking.promote(name, _register(name, folder, example))
    log = tmp_path / "server.log"
    srv = start_server(server_env | {"PAYCADENCE_MODEL_NAME": name,
                                     "PAYCADENCE_MODEL_REFRESH_SECONDS": "0"}, clean_dir, log)
    try:
        health = _health(srv)
        assert health["status"] == "ok" and health["reason"] == "ok", health
        served = _post(srv, {"as_of": as_of.isoformat(),
                             "debtors": [{"debtor_id": d} for d in good]})
        assert {r["model_version"] for r in served.json()["recommendations"]} \
            == {health["model_version"]}
        answer = _post(srv, {"as_of": as_of.isoformat(),
                             "debtors": [{"debtor_id": d} for d in sorted(bad)[:5]]})
        assert answer.status_code == 200
        jsonschema.validate(answer.json(), response_schema)
        recs = answer.json()["recommendations"]
        assert {r["model_version"] for r in recs} == {"fallback"}
        _no_nulls(recs)
        health = _health(srv)
        assert health["status"] == "degraded"
        assert health["reason"] == "model_output_not_finite"
        assert srv.proc.poll() is None
    finally:
        srv.stop()
    assert "gave a non-finite forecast (the settlement distribution is not finite" \
        in log.read_text()


# --- the batch commands -----------------------------------------------------------------------

def test_batch_recommend_and_report_fall_back_on_a_damaged_champion(
        champion_dir, example, mlflow_uri, server_env, sim_dir, tables, tmp_path):
    name = "paycadence-batch-damaged"
    version = _register(name, _copy(champion_dir, tmp_path / "files"), example)
    late = _stored_files(name, version) / "late.txt"
    late.write_bytes(_truncate_in_trees(late.read_bytes()))
    tracking.promote(name, version)
    env = server_env | {"PAYCADENCE_MODEL_NAME": name}
    day = tables.last_date.isoformat()
    for args in (["recommend", "--out", str(tmp_path / "recs.csv")],
                 ["report", "--out", str(tmp_path / "report.html")]):
        done = subprocess.run([PAYCADENCE, *args, "--data", str(sim_dir), "--as-of", day,
                               "--quiet"], env=env, capture_output=True, text=True,
                              timeout=600, check=False, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        said = done.stdout + done.stderr
        assert "not loaded (model_invalid: late.txt: sha256 differs" in said, said[-2000:]
        assert "rule-based fallback" in said and "fallback" in done.stdout
    assert set(pl.read_csv(tmp_path / "recs.csv")["model_version"].to_list()) == {"fallback"}


# --- the registry going away under a served model ----------------------------------------------

def test_an_unreachable_registry_keeps_the_model_and_says_so(trained, mlflow_uri, monkeypatch):
    from paycadence.config import Policy
    from paycadence.serving.engine import Engine

    engine = Engine.load(Policy(), model_name=CHAMPION, alias="champion")
    assert engine.reason == "ok" and not engine.degraded
    served = engine.version
    # a PostgreSQL store on a port nothing listens on
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://paycadence:s3cret@127.0.0.1:9/x")
    assert engine.refresh(CHAMPION, "champion") is False
    assert engine.reason == "registry_unreachable" and not engine.degraded
    assert engine.version == served and engine.models is not None
    assert "s3cret" not in engine.detail and "127.0.0.1" not in engine.detail
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    engine.refresh(CHAMPION, "champion")
    assert engine.reason == "ok" and engine.version == served

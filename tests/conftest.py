"""Shared fixtures: a small simulated company, a trained champion in a temporary MLflow store,
and a real server process on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from paycadence.config import Params, TrainParams, load_params

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PAYCADENCE = str(Path(sys.executable).parent / "paycadence")
SMALL = {"n_debtors": 150, "days": 540, "seed": 11}


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (contract schemas and public data); tests that need it skip without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent: contract schemas and public data unavailable")
    return SHARED


@pytest.fixture(scope="session")
def response_schema(shared_dir) -> dict:
    import json

    path = shared_dir / "schema" / "recommend-response.schema.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    # the contract's schema and the project's optional extensions, both at once
    own = ROOT / "docs" / "schema" / "recommend-response.extensions.schema.json"
    return {"allOf": [json.loads(path.read_text(encoding="utf-8")),
                      json.loads(own.read_text(encoding="utf-8"))]}


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """A seeded small company: 150 debtors over 540 days."""
    from paycadence.data.simulate import simulate

    return simulate(SMALL["n_debtors"], days=SMALL["days"], seed=SMALL["seed"])


@pytest.fixture(scope="session")
def sim_dir(sim, tmp_path_factory) -> Path:
    from paycadence.data.simulate import write_simulation

    out = tmp_path_factory.mktemp("sim")
    write_simulation(sim, out)
    return out


@pytest.fixture(scope="session")
def clean_dir(sim_dir, tmp_path_factory) -> Path:
    from paycadence.data.ingest import ingest

    out = tmp_path_factory.mktemp("clean")
    ingest(sim_dir, out)
    return out


@pytest.fixture(scope="session")
def tables(sim_dir):
    from paycadence.data.ingest import ingest

    return ingest(sim_dir).tables


@pytest.fixture(scope="session")
def small_params() -> Params:
    base = load_params()
    return base.model_copy(update={"train": TrainParams(**(base.train.model_dump() | {
        "n_estimators": 80}))})


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    """Every MLflow write of the session goes to a temporary SQLite store."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{path}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="session")
def trained(tables, small_params, mlflow_uri, sim_dir):
    """The champion, trained once per session into the temporary store.

    The store is named here, not read from the environment: a module's ``fallback_env``
    (an empty store for in-process apps) may hold ``MLFLOW_TRACKING_URI`` when a test of
    that module first asks for the champion, which then went to the empty store."""
    from paycadence.training import train

    held = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_uri
    try:
        return train(tables, params=small_params, data_dir=str(sim_dir))
    finally:
        os.environ["MLFLOW_TRACKING_URI"] = held if held is not None else mlflow_uri


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_process(args: list[str], env: dict, log: Path, url: str,
                  timeout: float = 120) -> subprocess.Popen:
    """A real ``paycadence serve ARGS`` process, returned once ``url/health`` answers."""
    proc = subprocess.Popen([PAYCADENCE, "serve", *args], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def wait_until(condition, what: str, *, timeout: float = 60, every: float = 0.1,
               log: Path | None = None) -> None:
    """Poll ``condition()`` until it is true; fail naming ``what`` (and the tail of ``log``)
    if it never becomes true. ``timeout`` only bounds a hung test: nothing is asserted about
    how long it takes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    tail = log.read_text()[-3000:] if log is not None else ""
    pytest.fail(f"never happened: {what}\n{tail}")


@pytest.fixture(scope="session")
def until():
    """``until(condition, what, timeout=..., every=..., log=...)``: :func:`wait_until`."""
    return wait_until


@pytest.fixture(scope="session")
def run_serve():
    """``run_serve(args, env, log, url)`` → a started ``paycadence serve`` process."""
    return serve_process


class Server:
    """A real ``paycadence serve`` process on loopback."""

    def __init__(self, env: dict, data_dir: Path | None, log: Path):
        self.env, self.data_dir, self.log = env, data_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> Server:
        args = ["--port", str(self.port)]
        if self.data_dir is not None:
            args += ["--data", str(self.data_dir)]
        self.proc = serve_process(args, self.env, self.log, self.url, timeout)
        return self

    def stop(self, sig=None) -> None:
        if self.proc and self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server_env(trained, mlflow_uri, tmp_path_factory) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYCADENCE_")}
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    env["PAYCADENCE_DATABASE_URL"] = (
        f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.db'}")
    return env


@pytest.fixture(scope="session")
def server(server_env, clean_dir, tmp_path_factory):
    srv = Server(server_env, clean_dir, tmp_path_factory.mktemp("logs") / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A clean working directory for commands that write under the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def has(cmd: str) -> bool:
    return shutil.which(cmd) is not None


@pytest.fixture(scope="session")
def start_server():
    """``start_server(env, data_dir, log)`` → a started :class:`Server` (stop it yourself)."""
    return lambda env, data_dir, log: Server(env, data_dir, log).start()


def java_available() -> bool:
    """Whether a ``java`` Spark can start is on the path (or under ``JAVA_HOME``)."""
    home = os.environ.get("JAVA_HOME")
    return Path(home, "bin", "java").exists() if home else shutil.which("java") is not None


@pytest.fixture(scope="session")
def spark():
    """A real Spark session on ``local[2]``, shared by the Spark tests (one xdist group);
    skipped, with the reason, where pyspark or Java is absent."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install '.[spark]')")
    if not java_available():
        pytest.skip("Java is absent: Spark needs Java 17 or newer (or JAVA_HOME)")
    from paycadence.serving.spark_batch import spark_session

    session, created = spark_session("local[2]")
    yield session
    if created:
        session.stop()


#: The browser the tests drive (Debian's chromium, installed by scripts/chromium.sh; playwright
#: never downloads one).
CHROMIUM = Path(os.environ.get("PAYCADENCE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium browser context (1360 × 900); the test is skipped where the browser
    or playwright is absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (bash scripts/chromium.sh install)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1360, "height": 900})
        try:
            yield context
        finally:
            context.close()


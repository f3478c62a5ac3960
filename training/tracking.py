"""MLflow tracking and registry: where runs go, how models are registered and found by alias."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from importlib.util import find_spec
from pathlib import Path

logger = logging.getLogger(__name__)

EXPERIMENT = "paycadence"
LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store under the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / LOCAL_DB}"


def shown_uri() -> str:
    """:func:`tracking_uri` as it may be printed, logged or reported: credentials masked."""
    from paycadence.redact import redact

    return redact(tracking_uri())


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store's file; a server's own default otherwise."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / LOCAL_ARTIFACTS).resolve().as_uri()
    return None


def setup(experiment: str = EXPERIMENT):
    """Point MLflow at the store and make sure the experiment exists; returns the client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    _reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    if client.get_experiment_by_name(experiment) is None:
        client.create_experiment(experiment, artifact_location=_artifact_root(uri))
    mlflow.set_experiment(experiment)
    return client


#: Database stores MLflow reaches through SQLAlchemy (``sqlite`` is a local file).
_DATABASES = ("postgresql", "mysql", "mssql")


def _reachable(uri: str, timeout_seconds: int = 5) -> None:
    """Raise :class:`RegistryUnavailableError` at once when a database tracking store cannot
    be connected to. MLflow itself retries ten times over about 100 s and then raises with
    a traceback; one plain connection says the same thing in ``timeout_seconds``.
    """
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in _DATABASES:
        return
    import sqlalchemy as sa

    from paycadence.errors import RegistryUnavailableError
    from paycadence.redact import redact

    args = {"connect_timeout": timeout_seconds} if scheme in ("postgresql", "mysql") else {}
    try:
        engine = sa.create_engine(uri, poolclass=sa.pool.NullPool, connect_args=args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - a driver missing, a host down, a bad password
        text = str(getattr(exc, "orig", None) or exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise RegistryUnavailableError(
            f"model registry {redact(uri)} cannot be reached: {redact(first)}") from None


def alias_version(client, name: str, alias: str):
    """The model version behind ``name@alias``, or None when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def download_model(name: str, alias: str) -> tuple[Path, str]:
    """Fetch ``models:/name@alias`` to a local folder; returns (risk folder, version)."""
    import mlflow

    client = setup()
    version = alias_version(client, name, alias)
    if version is None:
        from paycadence.errors import ModelNotFoundError

        raise ModelNotFoundError(f"no model {name}@{alias} in {shown_uri()}")
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version.version}")
    return Path(local) / "artifacts" / "risk", str(version.version)


#: The model version tag holding ``{file name: sha256}`` of the saved model's files (JSON).
CHECKSUM_TAG = "sha256"


def log_model(risk_dir: str | Path, *, model_name: str, example=None, signature=None) -> str:
    """Log a folder written by :meth:`paycadence.models.RiskModels.save` as a pyfunc model of
    the active run, register it as a new version of ``model_name`` and record the sha256 of
    each of its files as the version's ``sha256`` tag (before anything points an alias at
    it); returns the version.
    """
    import mlflow

    from paycadence.models import files

    sums = files.recorded(risk_dir)
    if sums is None:
        raise ValueError(f"{Path(risk_dir).name}: no {files.CHECKSUMS}; save it with "
                         "RiskModels.save")
    with _mlflow_prints_logged():
        info = mlflow.pyfunc.log_model(
            name="risk", python_model=find_spec("paycadence.models.pyfunc").origin,
            artifacts={"risk": str(risk_dir)}, signature=signature, input_example=example,
            registered_model_name=model_name, pip_requirements=model_requirements())
    version = str(info.registered_model_version)
    setup().set_model_version_tag(model_name, version, CHECKSUM_TAG,
                                  json.dumps(sums, sort_keys=True))
    return version


@contextlib.contextmanager
def _mlflow_prints_logged():
    """MLflow prints "Successfully registered model …" and "Created version …" on stderr itself
    (``eprint``, not a logger), through ``--quiet`` and into every caller's output: here they go
    to this module's log at INFO instead (the commands say what was registered)."""
    from mlflow.utils import logging_utils

    held, buffer = logging_utils.MLFLOW_LOGGING_STREAM, io.StringIO()
    logging_utils.MLFLOW_LOGGING_STREAM = buffer
    try:
        yield
    finally:
        logging_utils.MLFLOW_LOGGING_STREAM = held
        for line in buffer.getvalue().splitlines():
            if line.strip():
                logger.info("mlflow: %s", line.strip())


def model_requirements() -> list[str]:
    """The logged model's ``requirements.txt``: paycadence and its own dependencies (not its
    extras), each pinned to the version installed here. Given rather than inferred: MLflow's
    inference loads the model in a subprocess (about 7 s of every ``train``) and guessed from
    what happened to be imported (pyspark in, lightgbm and polars out)."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    out = [f"paycadence=={version('paycadence')}"]
    for spec in requires("paycadence") or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's
        try:
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            out.append(f"{req.name}{extras}=={version(req.name)}")
        except PackageNotFoundError:
            out.append(str(req))
    return out


def recorded_checksums(name: str, version: str) -> dict[str, str] | None:
    """The ``{file name: sha256}`` recorded when ``name`` version ``version`` was registered
    (None for a version registered before checksums were).

    Raises
    ------
    ValueError
        When the tag is there but is not such a mapping.
    """
    tags = setup().get_model_version(name, str(version)).tags or {}
    if CHECKSUM_TAG not in tags:
        return None
    sums = json.loads(tags[CHECKSUM_TAG])
    if not isinstance(sums, dict):
        raise ValueError(f"tag {CHECKSUM_TAG} of version {version} is not a mapping")
    return sums


def input_example(risk_dir: str | Path):
    """The input example registered with the model whose risk folder is ``risk_dir`` (a
    pandas frame of feature columns), or None when it was registered without one."""
    from mlflow.models import Model

    root = Path(risk_dir).parent.parent  # <model>/artifacts/risk
    try:
        return Model.load(root).load_input_example(root)
    except Exception as exc:  # noqa: BLE001 - no example, or an unreadable one: probe rows only
        logger.warning("the model's input example was not read (%s)", type(exc).__name__)
        return None


def version_tags(name: str, version: str) -> dict[str, str]:
    """The tags of ``name`` version ``version`` (its book, data, metrics, promotion)."""
    return dict(setup().get_model_version(name, version).tags or {})


def version_data_dir(name: str, version: str) -> str | None:
    """The data directory the run behind ``name`` version ``version`` was trained on."""
    client = setup()
    run_id = client.get_model_version(name, version).run_id
    if not run_id:
        return None
    return client.get_run(run_id).data.tags.get("data_dir") or None


def list_versions(name: str) -> list[dict]:
    """Every registered version of ``name``, newest first: version, aliases, creation time,
    run, the holdout metrics recorded as tags (``metrics``), the off-policy values (``value``,
    :data:`VALUE_TAGS`) with the champion version they were compared with (``compared_with``),
    and why it got its alias."""
    from mlflow.exceptions import MlflowException

    client = setup()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    try:
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    except MlflowException:
        pass
    out = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = dict(v.tags or {})
        out.append({"version": str(v.version), "aliases": sorted(aliases.get(str(v.version), [])),
                    "created": v.creation_timestamp, "run_id": v.run_id,
                    "metrics": {k: float(tags[k]) for k in METRIC_TAGS if k in tags},
                    "value": {k: float(tags[k]) for k in VALUE_TAGS if k in tags},
                    "compared_with": tags.get(COMPARED_TAG),
                    "promotion": tags.get("promotion", ""),
                    "data": {k: tags[k] for k in DATA_TAGS if k in tags}})
    return out


#: What each model version records of the data it learnt from (training/lineage.py).
DATA_TAGS = ("book", "data_fingerprint", "data_first_day", "data_last_day", "data_rows")
#: Holdout metrics recorded on each model version (train.py sets them).
METRIC_TAGS = ("late_auc", "late_brier", "late_ece", "days_mae", "unpaid_auc")
#: The off-policy values recorded on a version trained with a decision log: its policy's
#: doubly robust value per decision on the holdout's logged decisions with its 95% interval,
#: how many decisions, the champion's on the same decisions, and the policy's gain over the
#: logging policy with its paired interval (train.py sets them).
VALUE_TAGS = ("ope_dr", "ope_dr_low", "ope_dr_high", "ope_decisions", "champion_ope_dr",
              "champion_ope_dr_low", "champion_ope_dr_high", "champion_ope_decisions",
              "ope_gain", "ope_gain_low", "ope_gain_high")
#: The version tag (and run tag) naming the champion a new version was compared with (on
#: the same holdout: forecasts and, with a decision log, value).
COMPARED_TAG = "champion_version"


def promote(name: str, version: str, alias: str = "champion") -> str | None:
    """Point ``name@alias`` at ``version`` on purpose; returns the version it pointed at before.

    Raises
    ------
    InputError
        When ``name`` has no such version.
    """
    from mlflow.exceptions import MlflowException

    from paycadence.errors import InputError

    client = setup()
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise InputError(f"model {name} has no version {version} in {shown_uri()}") from None
    before = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, str(version))
    was = None if before is None else str(before.version)
    client.set_model_version_tag(name, str(version), "promotion",
                                 f"made {alias} by hand (paycadence promote); before: "
                                 f"{was or 'none'}")
    return was

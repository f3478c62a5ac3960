"""Configuration in one place: the policy file, the pipeline params and deployment settings.

Both YAML files load into frozen pydantic models with ``extra="forbid"``, so a typo is an
error that names the key. Nothing here reads a file at import time.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from paycadence.defaults import PARAMS_FILE, POLICY_FILE
from paycadence.errors import ConfigError

ACTIONS = ("wait", "email", "sms", "letter", "phone", "payment_plan", "collection")
CONTACT_CHANNELS = ("email", "sms", "letter", "phone", "payment_plan")
CHANNELS = ("email", "sms", "letter", "phone", "payment_plan", "collection")
OPTABLE_CHANNELS = ("email", "sms", "letter", "phone")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Costs(_Frozen):
    """Cost of one action, in the invoice currency."""

    email: float = Field(0.05, ge=0)
    sms: float = Field(0.15, ge=0)
    letter: float = Field(1.50, ge=0)
    phone: float = Field(6.00, ge=0)
    payment_plan: float = Field(2.00, ge=0)
    collection: float = Field(25.00, ge=0)

    def of(self, action: str) -> float:
        """Cost of ``action`` (``wait`` costs nothing)."""
        return 0.0 if action == "wait" else float(getattr(self, action))


class Rules(_Frozen):
    """Hard constraints (CONTRACT.md §2); the guard enforces every one of them."""

    min_days_between_contacts: int = Field(3, ge=0)
    max_contacts_per_30_days: int = Field(4, ge=1)
    min_reminders_before_collection: int = Field(2, ge=0)
    min_days_overdue_for_collection: int = Field(30, ge=0)
    contact_disputed_invoices: bool = False


class PaymentPlan(_Frozen):
    """Who may be offered a payment plan (a rule as hard as the others), and on what terms."""

    min_reminders_before_offer: int = Field(1, ge=0)
    min_open_amount: float = Field(100.0, ge=0)
    installments: int = Field(3, ge=2)


class Exploration(_Frozen):
    """How the policy explores (docs/policy.md).

    ``share`` of the decisions explore, uniformly over the candidates ``among`` names:
    ``near_best`` (default) — only on a day the policy would contact or hand over, among the
    other contacts the guard allows and waiting, so exploring never adds a contact;
    ``all`` — on any decision, among every allowed action.

    ``timing``: *when* to contact is explored too, by the product's decision
    (:mod:`paycadence.models.policy.exploration`) and by the simulator's logging schedule
    (``ScheduleLoggingPolicy``): on a debtor-day it would otherwise wait, with an open invoice
    overdue or due within ``learning.before_due_days`` (the simulator: 7) days (not disputed,
    not in collection) and a contact the guard allows, one of the allowed contacts is drawn
    uniformly with probability ``timing`` (propensity ``timing / k`` for ``k`` allowed
    contacts; a wait there has ``1 − timing``).
    """

    share: float = Field(0.05, ge=0, le=1)
    seed: int = 0
    among: Literal["near_best", "all"] = "near_best"
    #: On a day the policy waits while a contact is allowed and an invoice is overdue or due
    #: within ``learning.before_due_days``, a contact is drawn instead with this chance
    #: (uniformly among the allowed ones): the log then shows what earlier, later and
    #: before-due reminders do, with exact propensities.
    timing: float = Field(0.02, ge=0, le=1)


class Learning(_Frozen):
    """How far the policy trusts what it learnt from the book's log (docs/policy.md).

    ``min_support``: how many logged exploring decisions (drawn by the logging policy with a
    propensity below one half) in a band of days past due — of the action it would take, and
    of any action — the policy needs before it departs from the schedule there.
    ``before_due_days``: how many days before its due date an invoice may be reminded (and is
    valued).
    """

    min_support: float = Field(30.0, ge=0)
    before_due_days: int = Field(7, ge=0, le=60)


class Schedule(_Frozen):
    """The fixed reference schedule, in days past the due date: each step after the one
    before (a hand-over before the final notice, or two steps on one day, is refused)."""

    first_reminder: int = 2
    second_reminder: int = 18
    final_notice: int = 34
    collection: int = 50

    @model_validator(mode="after")
    def _in_order(self):
        steps = list(type(self).model_fields)
        for before, after in zip(steps, steps[1:], strict=False):
            if getattr(self, after) <= getattr(self, before):
                raise ValueError(f"{after} (day {getattr(self, after)}) must come after "
                                 f"{before} (day {getattr(self, before)})")
        return self


class Policy(_Frozen):
    """The policy file: costs, rules and the optional sections, each with its default."""

    costs: Costs = Costs()
    collection_fee_rate: float = Field(0.15, ge=0, le=1)
    annual_cost_of_capital: float = Field(0.08, ge=0, le=1)
    rules: Rules = Rules()
    payment_plan: PaymentPlan = PaymentPlan()
    exploration: Exploration = Exploration()
    schedule: Schedule = Schedule()
    learning: Learning = Learning()


class SimulateParams(_Frozen):
    debtors: int = Field(500, ge=1)
    days: int = Field(730, ge=60)
    seed: int = 1
    start: dt.date = dt.date(2024, 1, 1)


class FeatureParams(_Frozen):
    snapshot_every_days: int = Field(7, ge=1)
    #: Warm-up: days from the first invoice to the first snapshot day.
    min_history_days: int = Field(60, ge=0)
    #: A history with fewer snapshot days than this at the settings above is short
    #: (docs/models.md, "Short histories"): it is snapshot every ``short_every_days``, after
    #: a warm-up cut when need be to leave ``short_snapshot_days`` days of snapshots.
    min_snapshot_dates: int = Field(5, ge=4)
    short_every_days: int = Field(1, ge=1)
    short_snapshot_days: int = Field(20, ge=1)
    #: Above this many snapshot rows, a fixed random share of (debtor, day) pairs is kept.
    max_snapshot_rows: int = Field(2_000_000, ge=1000)
    snapshot_seed: int = 0
    #: When sampling, (debtor, day) pairs with an overdue invoice are kept this many times as
    #: often as the others (1: a uniform sample); training weights rows by 1 / share.
    overdue_oversampling: float = Field(2.0, ge=1, le=100)


class ShortModel(_Frozen):
    """The smaller model a short history is fit with (docs/models.md, "Short histories"):
    of these and the usual ``train`` settings of the same names, the fewer leaves and trees
    and the more rows per leaf are taken."""

    num_leaves: int = Field(4, ge=2)
    min_child_samples: int = Field(100, ge=1)
    n_estimators: int = Field(150, ge=1)


class TrainParams(_Frozen):
    seed: int = 42
    learning_rate: float = Field(0.05, gt=0, le=1)
    n_estimators: int = Field(300, ge=1)
    num_leaves: int = Field(31, ge=2)
    #: Depth limit of the p_late classifier's trees (-1: none), the model whose exact SHAP
    #: values give every decision its reasons: depth 4 made LightGBM's TreeSHAP 3-4x cheaper
    #: at the same quality (docs/models.md), and keeps the SHAP tables that replace it small
    #: (2^u x u values per leaf of u path features: paycadence.models.treeshap).
    late_max_depth: int = Field(4, ge=-1)
    min_child_samples: int = Field(40, ge=1)
    holdout_share: float = Field(0.25, gt=0, lt=1)
    #: Days between the training days and the holdout; at most half the days from the first
    #: snapshot day to the holdout (a short history keeps training days).
    embargo_days: int = Field(30, ge=0)
    #: Days of history (first invoice to the last dated row) a book needs to be trained;
    #: with fewer, ``train`` says how many more it needs.
    required_history_days: int = Field(60, ge=1)
    #: A history shorter than this (days) is fit with ``short_model`` (null: the usual one).
    short_history_days: int = Field(365, ge=0)
    short_model: ShortModel | None = ShortModel()
    horizon_days: int = Field(120, ge=91)
    #: The latest share of training days that calibrates p_late (the rest fits the booster).
    calibration_share: float = Field(0.2, gt=0, lt=1)
    #: Person-period rows of the settlement-hazard model above which snapshots are sampled.
    hazard_max_rows: int = Field(3_000_000, ge=1000)
    gate_auc_tolerance: float = Field(0.0, ge=0, le=1)
    gate_brier_tolerance: float = Field(0.0, ge=0, le=1)
    #: The value rule of the promotion gate, when the holdout period has logged decisions:
    #: the lower bound of a new model's doubly robust value per decision (95% interval) must
    #: be at least the champion's lower bound on the same decisions, less this share of its
    #: size (0: at least the champion's; null: the value rule is off).
    gate_ope_margin: float | None = Field(0.0, ge=0, le=1)
    #: The off-policy evaluation reads the logged decisions (and the table rows) of at most
    #: this many of the holdout's decided debtors: a hash sample of debtor ids above it.
    ope_max_debtors: int = Field(50_000, ge=1)


class IngestParams(_Frozen):
    """What every command accepts of its input (paycadence.data.checks)."""

    #: Above this share of a table's rows quarantined, a command stops with the counts
    #: (``--accept-quarantine`` goes on with the rows kept).
    max_quarantine_share: float = Field(0.05, ge=0, le=1)
    #: A decision day more than this many days after the data's last day is warned about.
    stale_after_days: int = Field(7, ge=0)


class RecommendParams(_Frozen):
    as_of: dt.date | None = None


class Params(_Frozen):
    """``params.yaml``: the pipeline's knobs by stage."""

    simulate: SimulateParams = SimulateParams()
    ingest: IngestParams = IngestParams()
    features: FeatureParams = FeatureParams()
    train: TrainParams = TrainParams()
    recommend: RecommendParams = RecommendParams()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return raw


def _explain(exc: ValidationError, path: Path) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return ConfigError(f"{path}: unknown key '{key}'")
    if first["type"] == "value_error":  # a check across keys: its own words
        return ConfigError(f"{path}: key '{key}': {first['msg'].removeprefix('Value error, ')}")
    return ConfigError(f"{path}: key '{key}': {first['msg'].lower()}")


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file; keys it lacks get the shipped defaults.

    Raises
    ------
    ConfigError
        When the file is unreadable, has an unknown key or a value of the wrong type.
    """
    if path is None:
        return Policy.model_validate(yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8")))
    path = Path(path)
    try:
        return Policy.model_validate(_read_yaml(path))
    except ValidationError as exc:
        raise _explain(exc, path) from None


def load_params(path: str | Path | None = None) -> Params:
    """Load ``params.yaml`` (the shipped defaults when ``path`` is None)."""
    if path is None:
        return Params.model_validate(yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8")))
    path = Path(path)
    try:
        return Params.model_validate(_read_yaml(path))
    except ValidationError as exc:
        raise _explain(exc, path) from None


class Settings(BaseSettings):
    """Deployment settings, from ``PAYCADENCE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="PAYCADENCE_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///paycadence-feedback.db"
    api_token: str | None = None
    data_dir: str | None = None
    policy_file: str | None = None
    model_name: str = "paycadence-risk"
    model_alias: str = "champion"
    max_body_bytes: int = 200_000_000
    #: Comma-separated origins (``https://ar.example.com``) allowed to call from a browser;
    #: empty: no CORS headers at all.
    cors_origins: str = ""
    model_refresh_seconds: float = 60.0  # how often the service checks whether the alias moved
    #: Seconds a request's body may take to arrive, from its headers to its last byte; a body
    #: still arriving then gets 408 and its connection is closed (0: no limit).
    body_timeout_seconds: float = Field(60.0, ge=0)
    #: Seconds a connection may take to send a request's headers (``paycadence serve`` only:
    #: its uvicorn protocol closes a connection that has not sent them by then; 0: no limit).
    header_timeout_seconds: float = Field(10.0, ge=0)
    #: Connections and requests in flight per worker above which uvicorn answers 503
    #: (``paycadence serve`` only; 0: no limit).
    limit_concurrency: int = Field(1000, ge=0)
    #: What a request body's unknown key gets (CONTRACT.md §5): ``refuse`` answers 422 naming
    #: it; ``ignore`` drops it, as the service did before 2026-12-07, for a client that sends
    #: extra keys on purpose. Table rows (``history``, ``/feedback``) ignore extra columns
    #: either way (CONTRACT.md §1).
    unknown_keys: Literal["refuse", "ignore"] = "refuse"
    #: The book this process works on (``--book``): its registered model is
    #: ``<model_name>.<book>`` and a champion of another book is refused (paycadence.books).
    book: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()

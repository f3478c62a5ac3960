"""Backtest: one simulated company run under several policies, with common random numbers.

The learnt policy's models are trained on the logged history of *another* company drawn from
the same simulator (seed + :data:`TRAIN_SEED_OFFSET`, the fixed schedule exploring 10% of the
time), so that the backtest never scores a model on the debtors it learnt from. Then the
company of ``seed`` is simulated three times over the same days: under the fixed schedule
(no exploration), under no dunning at all, and under the learnt policy — which decides
through :func:`paycadence.models.recommend`, the very code ``/recommend`` runs. Each invoice's
luck is drawn at issue (docs/simulator.md), so the three runs differ only by what the policies
did.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from paycadence.config import CONTACT_CHANNELS, Params, Policy
from paycadence.data import Tables, settlements
from paycadence.data.sim_policy import (
    DebtorContext,
    Decision,
    ScheduleLoggingPolicy,
    contact_step,
    schedule_decision_day,
)
from paycadence.data.sim_world import PROJECT_WORLD, World, resolve_world
from paycadence.data.simulate import simulate
from paycadence.guard import DebtorState, audit_actions
from paycadence.models import RiskModels, recommend

logger = logging.getLogger(__name__)

#: ``progress(what, done, total)``: how a long run reports where it is (the CLI draws a bar).
Progress = Callable[..., None]

TRAIN_SEED_OFFSET = 10_000
#: Invoices due at least this many days before the end are scored (their outcome is known).
SCORED_BEFORE_END = 90


class NoDunning:
    """Never acts: the world without reminders."""

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        return Decision("wait", (), 1.0, schedule_action="wait", n_allowed=1)


class LearntPolicy:
    """The product's own decision, asked on the schedule's decision days through
    :func:`paycadence.models.recommend` with the debtor's history as known that morning.
    ``on_call(n)`` (optional) hears the number of decisions asked so far, every 100."""

    def __init__(self, policy: Policy, models: RiskModels | None, version: str = "backtest",
                 on_call: Callable[[int], None] | None = None):
        self.policy, self.models, self.version = policy, models, version
        self.calls, self.on_call = 0, on_call

    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        """The schedule's decision days, and every day something is overdue and the last
        contact is a week old (when an earlier reminder may be worth it)."""
        if schedule_decision_day(state, on, self.policy, context):
            return True
        if not any(d > 0 for d in context.days_past_due.values()):
            return False
        last = max(state.contact_days, default=None)
        return last is None or (on - last).days >= 7

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        self.calls += 1
        if self.on_call is not None and self.calls % 100 == 0:
            self.on_call(self.calls)
        rec = recommend(context.history(), as_of=on, policy=self.policy, models=self.models,
                        model_version=self.version, debtor_ids=[state.debtor_id],
                        explain=False)[0]
        ids = tuple(rec["invoice_ids"])
        return Decision(rec["action"], ids, float(rec["propensity"]), bool(rec["explored"]),
                        contact_step(state, rec["action"], ids))


@dataclass(frozen=True)
class Outcome:
    """What one policy achieved on the company (currency in the invoices' currency)."""

    policy: str
    net_value: float
    collected: float
    contact_costs: float
    collection_fees: float
    mean_days_late: float
    unpaid_90d: float
    contacts_per_invoice: float
    handovers: int
    violations: int
    invoices_scored: int
    reminders_per_invoice: float = 0.0
    mean_days_late_paid: float = 0.0
    #: net value per debtor (``debtor_id``, ``net_value``; every debtor of the company, 0 when
    #: it had nothing): its sum is ``net_value``
    per_debtor: pl.DataFrame | None = field(default=None, repr=False, compare=False)


def outcome(name: str, tables: Tables, policy: Policy, *, start: dt.date, end: dt.date
            ) -> Outcome:
    """Score one simulated run.

    ``net_value``: payments discounted to the first day at ``annual_cost_of_capital``, minus
    the cost of every action and the agency's fee on what it recovered. A contact is counted
    as CONTRACT.md §2 counts it: the action rows of one debtor on one day on one channel are
    one email, call or letter (and cost once); each hand-over of an invoice costs once.
    ``contacts_per_invoice``: those contacts per invoice issued; ``reminders_per_invoice``: the
    contact rows (one per invoice named) per invoice. ``mean_days_late``: over invoices due at
    least 90 days before the end, settlement − due (0 when early; an invoice still open counts
    until the end); ``mean_days_late_paid``: the same over those of them that were settled.
    ``unpaid_90d``: the open amount of those invoices 90 days after their due date.
    ``violations``: the guard's audit of the whole action log.
    ``start`` and ``end`` are the first and last simulated days (the same for every policy).
    ``per_debtor``: the same net value debtor by debtor, for :func:`paired_margin`.
    """
    rate = policy.annual_cost_of_capital
    owner = tables.invoices.select("invoice_id", "debtor_id")
    pay = tables.payments.join(owner, on="invoice_id").with_columns(
        value=pl.col("amount") * ((pl.col("paid_on") - start).dt.total_days()
                                  .cast(pl.Float64) * (-rate / 365)).exp())
    collected = float(pay["amount"].sum() or 0.0)
    acts = tables.actions.join(owner, on="invoice_id")
    costs_of = {a: policy.costs.of(a) for a in (*CONTACT_CHANNELS, "collection")}
    contacts = acts.filter(pl.col("channel").is_in(list(CONTACT_CHANNELS))).select(
        "debtor_id", "sent_on", "channel").unique()
    handovers = acts.filter(pl.col("channel") == "collection")
    spent = pl.concat([contacts.select("debtor_id", "channel"),
                       handovers.select("debtor_id", "channel")]).with_columns(
        cost=pl.col("channel").replace_strict(costs_of, return_dtype=pl.Float64))
    handed = handovers["invoice_id"].unique()
    recovered = pay.join(handovers.select("invoice_id", "sent_on"), on="invoice_id").filter(
        pl.col("paid_on") >= pl.col("sent_on")).with_columns(
        fee=pl.col("amount") * policy.collection_fee_rate)
    per_debtor = tables.debtors.select("debtor_id").unique().join(
        pay.group_by("debtor_id").agg(pl.col("value").sum()), on="debtor_id", how="left").join(
        spent.group_by("debtor_id").agg(pl.col("cost").sum()), on="debtor_id", how="left").join(
        recovered.group_by("debtor_id").agg(pl.col("fee").sum()), on="debtor_id", how="left"
    ).fill_null(0.0).select(
        "debtor_id", net_value=pl.col("value") - pl.col("cost") - pl.col("fee")
    ).sort("debtor_id")
    discounted = float(pay["value"].sum() or 0.0)
    costs = float(spent["cost"].sum() or 0.0)
    fees = float(recovered["fee"].sum() or 0.0)
    settled = settlements(tables.invoices.lazy(), tables.payments.lazy()).collect()
    scored = tables.invoices.filter(
        pl.col("due_date") <= end - dt.timedelta(days=SCORED_BEFORE_END)).join(
        settled, on="invoice_id", how="left")
    days_late = (pl.coalesce("settled_on", pl.lit(end)) - pl.col("due_date")).dt.total_days() \
        .clip(lower_bound=0)
    late = scored.select(days_late.mean()).item()
    late_paid = scored.filter(pl.col("settled_on").is_not_null()).select(days_late.mean()).item()
    cut = pay.join(scored.select("invoice_id", "due_date"), on="invoice_id").filter(
        pl.col("paid_on") <= pl.col("due_date") + pl.duration(days=90)).group_by(
        "invoice_id").agg(pl.col("amount").sum().alias("by90"))
    unpaid = scored.join(cut, on="invoice_id", how="left").select(
        (pl.col("amount") - pl.col("by90").fill_null(0.0)).clip(lower_bound=0).sum()).item()
    reminders = acts.filter(pl.col("channel").is_in(list(CONTACT_CHANNELS))).height
    broken = audit_actions(tables.actions.to_dicts(), tables.invoices.to_dicts(),
                           tables.disputes.to_dicts(), tables.debtors.to_dicts(), policy)
    n_inv = max(tables.invoices.height, 1)
    return Outcome(name, discounted - costs - fees, collected, costs, fees,
                   float(late or 0.0), float(unpaid or 0.0), contacts.height / n_inv,
                   int(handed.len()), len(broken), scored.height, reminders / n_inv,
                   float(late_paid or 0.0), per_debtor)


@dataclass(frozen=True)
class Margin:
    """How much more one policy earned than another on the same company, debtor by debtor
    (common random numbers make the difference paired), with a bootstrap interval."""

    difference: float  # net value of ``a`` − net value of ``b`` (currency)
    relative: float  # difference / |net value of b|
    low: float  # 95% bootstrap interval of ``relative`` over debtors
    high: float
    debtors_better: int  # debtors for whom ``a`` earned more than ``b``
    debtors_worse: int


def paired_margin(a: Outcome, b: Outcome, *, seed: int = 0, resamples: int = 2000) -> Margin:
    """``a``'s net value against ``b``'s, with a 95% interval from resampling debtors (with
    replacement, the same debtors for both): how sure the margin is, not only how big. Both
    outcomes must be of the same company (:func:`outcome`'s ``per_debtor``)."""
    joined = a.per_debtor.join(b.per_debtor, on="debtor_id", how="full", coalesce=True,
                               suffix="_b").fill_null(0.0)
    diff = (joined["net_value"] - joined["net_value_b"]).to_numpy()
    base = abs(b.net_value) or 1.0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(diff), size=(resamples, len(diff)))
    totals = diff[draws].sum(axis=1) / base
    low, high = np.percentile(totals, [2.5, 97.5])
    return Margin(float(diff.sum()), float(diff.sum() / base), float(low), float(high),
                  int((diff > 1e-9).sum()), int((diff < -1e-9).sum()))


class OneStepDeviation:
    """The logging policy on every day but one, where a given action is taken instead.

    The logging policy is still asked on that day, so that its own random draws stay in step
    with the logged run: before the day the two runs are the same, after it the logging policy
    carries on from wherever the other action left the debtor.
    """

    def __init__(self, logging_policy: ScheduleLoggingPolicy, on: dt.date, action: str,
                 invoice_ids: tuple[str, ...]):
        self.logging, self.on, self.action, self.ids = logging_policy, on, action, invoice_ids

    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        return on == self.on or self.logging.is_decision_day(state, on, context)

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        logged = self.logging.decide(state, on, context)
        if on != self.on:
            return logged
        ids = self.ids if self.action != "wait" else ()
        return Decision(self.action, ids, 1.0, False, contact_step(state, self.action, ids))


def one_step_truth(n_debtors: int, days: int, seed: int, start: dt.date, policy: Policy,
                   decisions: pl.DataFrame, options: list[dict], logged: np.ndarray,
                   *, exploration_share: float = 0.10,
                   world: World = PROJECT_WORLD, progress: Progress | None = None
                   ) -> np.ndarray:
    """What the candidate really earns on each logged decision, by simulation.

    The off-policy estimators answer one question per logged decision: the mean reward
    (:func:`paycadence.training.ope.rewards`) had the candidate decided that morning, the
    logging policy deciding before and after. The simulator can answer it exactly: for every
    action the candidate could draw there (``options``: action → (probability, invoice ids)),
    the debtor is simulated again with that action on that day (:class:`OneStepDeviation`,
    common random numbers), and the rewards are averaged with the candidate's probabilities.
    An action equal to the logged one, naming the same invoices, reuses the logged reward
    ``logged`` (the run would be the same).
    """
    from paycadence.training.ope import rewards

    out = np.zeros(decisions.height)
    rows = decisions.select("debtor_id", "decided_on", "action", "invoice_ids").iter_rows()
    for k, ((debtor_id, day, action, ids), option) in enumerate(zip(rows, options,
                                                                   strict=True)):
        logged_ids = frozenset(filter(None, (ids or "").split(";")))
        total = 0.0
        for alt, (prob, alt_ids) in option.items():
            if prob <= 0:
                continue
            if alt == action and frozenset(alt_ids) == logged_ids:
                total += prob * float(logged[k])
                continue
            deviation = OneStepDeviation(ScheduleLoggingPolicy(policy, exploration_share, seed),
                                         day, alt, tuple(alt_ids))
            run = simulate(n_debtors, days=days, seed=seed, start=start, policy=policy,
                           logging_policy=deviation, only=[int(debtor_id[1:])], world=world)
            one = pl.DataFrame({"debtor_id": [debtor_id], "decided_on": [day],
                                "action": [alt]})
            total += prob * float(rewards(run.tables, one, policy)[0])
        out[k] = total
        if progress is not None and (k + 1) % 25 == 0:
            progress("off-policy check: re-simulating the logged decisions", k + 1,
                     decisions.height)
    return out


@dataclass(frozen=True)
class OpeCheck:
    """The off-policy estimates of the learnt policy on the training company's logged
    decisions, next to what it really earns on those decisions (:func:`one_step_truth`),
    both per decision."""

    simulated: float
    dr: float
    ips: float
    snips: float
    logged: float
    decisions: int


@dataclass(frozen=True)
class Captured:
    """Share of the oracle's gain over the fixed schedule that the learnt policy captured,
    ``(learnt − fixed) / (oracle − fixed)`` (sums over debtors), with a paired 95% bootstrap
    interval over debtors; NaN everywhere when the oracle gains nothing over fixed."""

    value: float
    low: float
    high: float
    oracle_gain: float  # oracle − fixed, net value (currency)
    learnt_gain: float  # learnt − fixed

    @property
    def defined(self) -> bool:
        return self.oracle_gain > 0


def captured_share(learnt: Outcome, fixed: Outcome, oracle: Outcome, *, seed: int = 0,
                   resamples: int = 2000) -> Captured:
    """How much of what the oracle earns over the fixed schedule the learnt policy earns.

    The three outcomes are of the same company (common random numbers), so the ratio is
    resampled debtor by debtor: each resample draws the debtors with replacement and takes
    the ratio of the sums. A resample where the oracle gains nothing has an infinite ratio
    (signed by the learnt policy's gain), so a denominator that is not clearly positive shows
    as an unbounded interval rather than a falsely narrow one.
    """
    frames = [o.per_debtor.rename({"net_value": o.policy}) for o in (learnt, fixed, oracle)]
    joined = frames[0].join(frames[1], on="debtor_id", how="full", coalesce=True).join(
        frames[2], on="debtor_id", how="full", coalesce=True).fill_null(0.0)
    base = joined[fixed.policy].to_numpy()
    num = joined[learnt.policy].to_numpy() - base
    den = joined[oracle.policy].to_numpy() - base
    if den.sum() <= 0:
        return Captured(math.nan, math.nan, math.nan, float(den.sum()), float(num.sum()))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(den), size=(resamples, len(den)))
    tops, bottoms = num[draws].sum(axis=1), den[draws].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(bottoms > 0, tops / np.where(bottoms > 0, bottoms, 1.0),
                          np.copysign(np.inf, tops))
    low, high = np.percentile(ratios, [2.5, 97.5], method="inverted_cdf")  # keeps ±inf
    return Captured(float(num.sum() / den.sum()), float(low), float(high), float(den.sum()),
                    float(num.sum()))


@dataclass(frozen=True)
class BacktestResult:
    outcomes: list[Outcome]
    train_seed: int
    models: RiskModels | None
    learnt_calls: int
    ope: OpeCheck | None = None
    #: the learnt policy against the fixed schedule, debtor by debtor (:func:`paired_margin`)
    margin: Margin | None = None
    #: the simulator's true model used greedily (training/oracle.py), on the same company
    oracle: Outcome | None = None
    #: share of the oracle's gain over fixed that the learnt policy captured
    captured: Captured | None = None


def run_backtest(n_debtors: int, days: int, seed: int, *, policy: Policy | None = None,
                 params: Params | None = None, start: dt.date = dt.date(2024, 1, 1),
                 ope: bool = False, world: World | str = PROJECT_WORLD, oracle: bool = True,
                 progress: Progress | None = None) -> BacktestResult:
    """Train on another company of the same simulator, then run the fixed schedule, no
    dunning and the learnt policy on the company of ``seed`` (see the module docstring).

    ``world`` is the simulator's set of behavioural assumptions (both companies use it), or
    a world's name (:func:`~paycadence.data.sim_world.resolve_world`).
    With ``ope``, also estimate the learnt policy off-policy on the training company's logged
    decisions (:func:`paycadence.training.ope.evaluate_policy`) and simulate what it really
    earns on each of them (:func:`one_step_truth`), to compare the two.
    With ``oracle``, also run :class:`paycadence.training.oracle.OraclePolicy` (the
    simulator's true model used greedily) on the same company and measure the share of its
    gain over the fixed schedule that the learnt policy captured (:func:`captured_share`).
    ``progress(what, done, total)`` hears each phase (and the decisions asked, re-simulated).
    """
    from paycadence.training.fitting import fit_models

    policy = policy or Policy()
    params = params or Params()
    world = resolve_world(world)
    phases = 5 + ope + oracle
    step = progress or (lambda what, done=None, total=None: None)
    step(f"simulating the training company {seed + TRAIN_SEED_OFFSET}", 0, phases)
    history = simulate(n_debtors, days=days, seed=seed + TRAIN_SEED_OFFSET, start=start,
                       policy=policy, world=world)
    step("training the models on its history", 1, phases)
    models = fit_models(history.tables, params)

    def asked(n: int) -> None:
        step(f"company {seed} under the learnt policy: {n:,} decisions asked", 4, phases)

    runs = {
        "fixed schedule": ScheduleLoggingPolicy(policy, epsilon=0.0, seed=seed),
        "no dunning": NoDunning(),
        "learnt policy": LearntPolicy(policy, models, on_call=asked),
    }
    out = []
    for k, (name, decider) in enumerate(runs.items()):
        step(f"company {seed} under the {name}", 2 + k, phases)
        result = simulate(n_debtors, days=days, seed=seed, start=start, policy=policy,
                          logging_policy=decider, world=world)
        out.append(outcome(name, result.tables, policy, start=start,
                           end=start + dt.timedelta(days=days - 1)))
        logger.info("backtest %s: %s", name, out[-1])
    end = start + dt.timedelta(days=days - 1)
    best = share = None
    if oracle:
        from paycadence.data.simulate import company_debtors
        from paycadence.training.oracle import OraclePolicy

        step(f"company {seed} under the oracle (the simulator's true model)", 5, phases)
        truth = company_debtors(n_debtors, days=days, seed=seed, start=start, world=world)
        result = simulate(n_debtors, days=days, seed=seed, start=start, policy=policy,
                          logging_policy=OraclePolicy(policy, truth, start=start), world=world)
        best = outcome("oracle", result.tables, policy, start=start, end=end)
        logger.info("backtest oracle: %s", best)
        share = captured_share(out[-1], out[0], best, seed=seed)
    check = None
    if ope:
        from paycadence.training.ope import evaluate_policy, rewards

        decisions = history.decisions.sort("decided_on", "debtor_id")
        step("off-policy estimates on the training company's logged decisions", 5 + oracle,
             phases)
        estimate = evaluate_policy(history.tables, decisions, policy, models)
        logged = rewards(history.tables, decisions, policy)
        truth = one_step_truth(n_debtors, days, seed + TRAIN_SEED_OFFSET, start, policy,
                               decisions, estimate.options, logged, world=world,
                               progress=progress)
        check = OpeCheck(float(truth.mean()), estimate.dr.value, estimate.ips.value,
                         estimate.snips.value, estimate.logged.value, estimate.decisions)
    return BacktestResult(out, seed + TRAIN_SEED_OFFSET, models, runs["learnt policy"].calls,
                          check, paired_margin(out[-1], out[0], seed=seed), best, share)


#: MLflow experiment of backtest runs (the report shows the latest).
BACKTEST_EXPERIMENT = "paycadence-backtest"


def log_backtest(result: BacktestResult, *, debtors: int, days: int, seed: int,
                 world: str, policy: Policy) -> str:
    """Record a backtest as an MLflow run (experiment :data:`BACKTEST_EXPERIMENT`, tag
    ``kind=backtest``): per policy its net value, days late, unpaid at due + 90, contacts and
    reminders per invoice, hand-overs and violations (``fixed_schedule_net_value``, …), the
    learnt policy against the fixed schedule, and the off-policy check. Returns the run id."""
    import mlflow

    from paycadence.training import tracking

    tracking.setup(BACKTEST_EXPERIMENT)
    fixed = result.outcomes[0]
    metrics: dict[str, float] = {}
    for o in result.outcomes:
        key = o.policy.replace(" ", "_")
        metrics |= {f"{key}_{name}": float(getattr(o, name)) for name in (
            "net_value", "mean_days_late", "mean_days_late_paid", "unpaid_90d",
            "contacts_per_invoice", "reminders_per_invoice", "handovers", "violations")}
    learnt = result.outcomes[-1]
    metrics |= {"learnt_vs_fixed_net_value": relative(learnt.net_value, fixed.net_value),
                "learnt_vs_fixed_days_late": relative(learnt.mean_days_late,
                                                      fixed.mean_days_late),
                "decisions_asked": float(result.learnt_calls)}
    if result.margin is not None:
        m = result.margin
        metrics |= {"learnt_vs_fixed_net_value_low": m.low,
                    "learnt_vs_fixed_net_value_high": m.high,
                    "learnt_vs_fixed_debtors_better": float(m.debtors_better),
                    "learnt_vs_fixed_debtors_worse": float(m.debtors_worse)}
    if result.oracle is not None:
        o = result.oracle
        metrics |= {f"oracle_{name}": float(getattr(o, name)) for name in (
            "net_value", "mean_days_late", "mean_days_late_paid", "unpaid_90d",
            "contacts_per_invoice", "reminders_per_invoice", "handovers", "violations")}
    if result.captured is not None:
        k = result.captured
        metrics |= {"captured": k.value, "captured_low": k.low, "captured_high": k.high,
                    "oracle_vs_fixed_net_value": k.oracle_gain}
    if result.ope is not None:
        c = result.ope
        metrics |= {"ope_dr": c.dr, "ope_ips": c.ips, "ope_snips": c.snips,
                    "ope_simulated": c.simulated, "ope_logged": c.logged,
                    "ope_dr_error": relative(c.dr, c.simulated)}
    with mlflow.start_run(run_name=f"backtest seed {seed}") as run:
        mlflow.set_tag("kind", "backtest")
        mlflow.log_params({"debtors": debtors, "days": days, "seed": seed, "world": world,
                           "train_seed": result.train_seed,
                           "exploration": policy.exploration.share})
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        return run.info.run_id


def relative(a: float, b: float) -> float:
    """(a − b) / |b|, NaN when b is 0."""
    return (a - b) / abs(b) if b else math.nan

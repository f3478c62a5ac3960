"""Backtest: one simulated company, its own logged past, then its future under several policies.

The company of ``seed`` is simulated over ``history_days + days`` days. For the first
``history_days`` (the past) every run uses the same logging policy — the fixed schedule
exploring ``exploration_share`` of the time, as a company logs before it adopts the product —
and each invoice's luck is drawn at issue (docs/simulator.md), so every run has exactly the
same past. On the switch day each run hands over to its own policy (:class:`Switch`): the fixed
schedule (no exploration), no dunning at all, the learnt policy — whose models are trained on
the past as known that morning (:func:`paycadence.training.train.cut_tables`) and which decides
through :func:`paycadence.models.recommend`, the very code ``/recommend`` runs — and, optionally,
the oracle (the simulator's true model, :mod:`paycadence.training.oracle`). Only the future is
scored (:func:`~paycadence.training.scoring.outcome` with ``scored_from``): the invoices open on
the switch morning or issued later and due at least 90 days before the end, so that each one's
fate is mostly known (docs/policy.md measures what is left). The runs differ only by what the
policies did from the switch day on.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from paycadence.config import Params, Policy
from paycadence.data import Tables
from paycadence.data.sim_policy import (
    DebtorContext,
    Decision,
    DecisionPolicy,
    ScheduleLoggingPolicy,
    contact_step,
)
from paycadence.data.sim_world import PROJECT_WORLD, World, resolve_world
from paycadence.data.simulate import simulate
from paycadence.guard import DebtorState, allowed_actions
from paycadence.models import RiskModels, recommend
from paycadence.training.forecastcheck import ForecastCheck, forecast_check
from paycadence.training.scoring import (
    SCORED_BEFORE_END,
    Captured,
    Margin,
    Outcome,
    captured_share,
    outcome,
    paired_margin,
    scored_invoices,
)

__all__ = ["SCORED_BEFORE_END", "BacktestResult", "Captured", "LearntPolicy", "Margin",
           "NoDunning", "OneStepDeviation", "OpeCheck", "Outcome", "Switch", "captured_share",
           "log_backtest", "one_step_truth", "outcome", "paired_margin", "relative",
           "run_backtest", "scored_invoices"]

logger = logging.getLogger(__name__)

#: ``progress(what, done, total)``: how a long run reports where it is (the CLI draws a bar).
Progress = Callable[..., None]


class NoDunning:
    """Never acts: the world without reminders (never asked, so no decision is logged)."""

    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        return False

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        return Decision("wait", (), 1.0, schedule_action="wait", n_allowed=1)


class LearntPolicy:
    """The product's own decision, asked through :func:`paycadence.models.recommend` with the
    debtor's history as known that morning. ``on_call(n)`` (optional) hears the number of
    decisions asked so far, every 100.

    It is asked on every morning the debtor has an open invoice that is overdue or due within
    ``lead_days`` days and the guard allows some action other than ``wait`` on one of them:
    the policy weighs every allowed action every debtor-day, reminders before the due date
    included, so asking only on the schedule's days would hide its choices.
    """

    def __init__(self, policy: Policy, models: RiskModels | None, version: str = "backtest",
                 on_call: Callable[[int], None] | None = None, lead_days: int = 7):
        self.policy, self.models, self.version = policy, models, version
        self.calls, self.on_call, self.lead_days = 0, on_call, lead_days
        #: how the decisions were taken (:func:`decided_by`) → how many
        self.decided_by: Counter = Counter()
        #: "schedule's action → chosen action" of the departures (:func:`departure`) → how many
        self.departures: Counter = Counter()
        #: "how decided: action" of the decisions that acted (all but waiting) → how many
        self.acted: Counter = Counter()

    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        """An open invoice is overdue or due within ``lead_days`` days, and the guard allows
        an action other than ``wait`` on one of them."""
        near = {i for i, late in context.days_past_due.items() if late >= -self.lead_days}
        if not near:
            return False
        allowed = allowed_actions(state, on, self.policy)
        return any(action != "wait" and not near.isdisjoint(ids)
                   for action, ids in allowed.items())

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        return self.decide_many([(state, on, context)])[0]

    def decide_many(self, requests: list[tuple[DebtorState, dt.date, DebtorContext]]
                    ) -> list[Decision]:
        """The decisions of several debtors on one morning, in one call to ``recommend`` with
        their histories together (each debtor's features and exploration draw are its own, so
        each is decided exactly as alone)."""
        if not requests:
            return []
        on = requests[0][1]
        if any(day != on for _, day, _ in requests):
            raise ValueError("decide_many: the requests are not all of one morning")
        before = self.calls
        self.calls += len(requests)
        if self.on_call is not None and self.calls // 100 > before // 100:
            self.on_call(self.calls // 100 * 100)
        histories = [context.history() for _, _, context in requests]
        tables = Tables(**{name: pl.concat([getattr(h, name) for h in histories])
                           for name, _ in histories[0].items()})
        recs = recommend(tables, as_of=on, policy=self.policy, models=self.models,
                         model_version=self.version,
                         debtor_ids=[state.debtor_id for state, _, _ in requests],
                         explain=False)
        return [self._decision(state, rec)
                for (state, _, _), rec in zip(requests, recs, strict=True)]

    def _decision(self, state: DebtorState, rec: dict) -> Decision:
        """One recommendation as the simulator's decision, tallied."""
        ids = tuple(rec["invoice_ids"])
        kind = decided_by(rec["reason"])
        self.decided_by[kind] += 1
        if rec["action"] != "wait":
            self.acted[f"{kind}: {rec['action']}"] += 1
        moved = departure(rec["reason"])
        if moved is not None:
            self.departures[moved] += 1
        return Decision(rec["action"], ids, float(rec["propensity"]), bool(rec["explored"]),
                        contact_step(state, rec["action"], ids))


#: How a decision was taken, by the start of its ``reason`` (models/policy/decision.py).
_DECIDED_BY = (("exploring:", "explored"), ("held back by the rules", "held back"))


def decided_by(reason: str) -> str:
    """``departed`` (the learnt values chose another action than the schedule's), ``agreed`` (they
    chose the schedule's), ``thin log`` (the schedule's action kept for want of support),
    ``unsure`` (kept because the two halves' payment models disagree), ``explored``, ``held
    back`` (by the guard) or ``schedule`` (no value model)."""
    for start, kind in _DECIDED_BY:
        if reason.startswith(start):
            return kind
    if "learnt from this book's log" in reason:
        return "departed"
    if "also worth most by the learnt values" in reason:
        return "agreed"
    if "the payment models learnt from the two halves" in reason or \
            "no learnt difference to stand on" in reason:
        return "unsure"
    if "the schedule's action is kept" in reason:
        return "thin log"
    return "schedule"


_DEPARTED = re.compile(r"learnt from this book's log: (\w+) is worth [^ ]+ against [^ ]+ for "
                       r"(?:the schedule's (\w+)|waiting)")


def departure(reason: str) -> str | None:
    """``"email → wait"`` (the schedule's action, then the one the learnt values chose) when
    ``reason`` is a departure from the schedule, else None."""
    m = _DEPARTED.search(reason)
    if m is None:
        return None
    chosen = "wait" if m.group(1) == "waiting" else m.group(1)
    return f"{m.group(2) or 'wait'} → {chosen}"


class Switch:
    """``before`` decides on the mornings before ``on``, ``after`` from ``on`` on.

    Both policies must define ``is_decision_day``. ``after``'s is called on *every* morning the
    engine describes the debtor, before the switch too (its answer then ignored), so that a
    policy that watches every morning — the oracle keeps what the company has seen of each
    invoice — has seen the whole past when it takes over.
    """

    def __init__(self, before: DecisionPolicy, after: DecisionPolicy, *, on: dt.date):
        self.before, self.after, self.on = before, after, on

    def is_decision_day(self, state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        later = self.after.is_decision_day(state, on, context)
        if on < self.on:
            return self.before.is_decision_day(state, on, context)
        return later

    def decide(self, state: DebtorState, on: dt.date, context: DebtorContext) -> Decision:
        return (self.before if on < self.on else self.after).decide(state, on, context)

    def decide_many(self, requests: list[tuple[DebtorState, dt.date, DebtorContext]]
                    ) -> list[Decision]:
        """One morning's decisions: ``after.decide_many`` from the switch day on where it has
        one, else one ``decide`` per debtor."""
        if requests and requests[0][1] >= self.on and hasattr(self.after, "decide_many"):
            return self.after.decide_many(requests)
        return [self.decide(*request) for request in requests]


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
    from paycadence.training.ope import REWARD_DAYS, rewards

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
            # the reward is known REWARD_DAYS after the decision: nothing later is simulated
            run = simulate(n_debtors, days=days, seed=seed, start=start, policy=policy,
                           logging_policy=deviation, only=[int(debtor_id[1:])], world=world,
                           until=day + dt.timedelta(days=REWARD_DAYS))
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
    """The off-policy estimates of the learnt policy on the decisions logged in the company's
    past (those whose 30-day reward is known on the switch day), next to what it really earns
    on those decisions (:func:`one_step_truth`), both per decision."""

    simulated: float
    dr: float
    ips: float
    snips: float
    logged: float
    decisions: int
    #: debtors whose decisions were checked, of those who decided (a sample when fewer)
    debtors: int = 0
    decided_debtors: int = 0
    #: the DR estimate's 95% bootstrap interval over debtors, and its effective sample size
    #: (Σw)² / Σw²: an error inside the interval is the estimate's variance on this sample
    dr_low: float = float("nan")
    dr_high: float = float("nan")
    effective_n: float = float("nan")
    #: DR − the logging policy's observed mean, and its paired 95% interval over debtors
    #: (:attr:`paycadence.training.ope.OpeResult.gain`); ``simulated − logged`` is its truth
    gain_low: float = float("nan")
    gain_high: float = float("nan")


@dataclass(frozen=True)
class BacktestResult:
    outcomes: list[Outcome]
    #: days of logged past before the switch day (what the models learnt from)
    history_days: int
    models: RiskModels | None
    learnt_calls: int
    ope: OpeCheck | None = None
    #: the learnt policy against the fixed schedule, debtor by debtor (:func:`paired_margin`)
    margin: Margin | None = None
    #: the simulator's true model used greedily (training/oracle.py), on the same company
    oracle: Outcome | None = None
    #: share of the oracle's gain over fixed that the learnt policy captured
    captured: Captured | None = None
    #: the first day each run's own policy decided; scoring starts there
    switch_on: dt.date | None = None
    #: ε of the schedule that logged the past
    history_exploration: float = 0.10
    #: how the learnt policy's decisions were taken (:func:`decided_by`) → how many
    learnt_decided_by: dict = field(default_factory=dict)
    #: the learnt policy's departures from the schedule, "schedule's → chosen" → how many
    learnt_departures: dict = field(default_factory=dict)
    #: the learnt policy's actions other than waiting, "how decided: action" → how many
    learnt_acted: dict = field(default_factory=dict)
    #: ``p_late`` of the models against the simple references on the future's new invoices
    #: under the fixed schedule (training/forecastcheck.py); None without models
    forecast: ForecastCheck | None = None
    #: with ``regret``: (true kind, action) → :class:`paycadence.training.regret.Tally` of the
    #: learnt policy's decisions, valued by the simulator's true model
    regret: dict | None = None
    #: with ``truth_replays``: the true chance that each invoice the forecast check scores is
    #: late (and unpaid at due + 90), from the world's latent state — the ceiling
    #: (:func:`paycadence.training.ceiling.true_outcomes`)
    ceiling: pl.DataFrame | None = None


def run_backtest(n_debtors: int, days: int, seed: int, *, history_days: int = 365,
                 policy: Policy | None = None, params: Params | None = None,
                 start: dt.date = dt.date(2024, 1, 1), ope: bool = False,
                 world: World | str = PROJECT_WORLD, oracle: bool = True,
                 exploration_share: float = 0.10, ope_debtors: int | None = None,
                 progress: Progress | None = None, regret: bool = False,
                 truth_replays: int = 0, truth_jobs: int = 1) -> BacktestResult:
    """Train on the company's own logged past, then run its future under the fixed schedule,
    no dunning and the learnt policy (and the oracle); see the module docstring.

    Parameters
    ----------
    n_debtors, seed
        The company (:func:`~paycadence.data.simulate.simulate`).
    days
        The future scored, days from the switch day; more than :data:`SCORED_BEFORE_END`
        (the last 90 are the tail in which the scored invoices' fates play out).
    history_days
        The logged past, days from ``start``: the switch day is ``start + history_days``.
    policy, params
        Policy file (rules, costs, the learnt policy's settings) and training params.
    ope
        Also estimate the learnt policy off-policy on the decisions logged in the past
        (:func:`paycadence.training.ope.evaluate_policy`) and simulate what it really earns on
        each of them (:func:`one_step_truth`), to compare the two.
    world
        The simulator's behavioural assumptions, or a world's name
        (:func:`~paycadence.data.sim_world.resolve_world`).
    oracle
        Also run :class:`paycadence.training.oracle.OraclePolicy` (the simulator's true model
        used greedily) from the switch day and measure the share of its gain over the fixed
        schedule that the learnt policy captured (:func:`captured_share`).
    exploration_share
        ε of the logging schedule of the past, in [0, 1].
    ope_debtors
        With ``ope``: check on the logged decisions of at most this many debtors (a hash
        sample, :func:`~paycadence.training.bounded.sampled_debtors`); None: every debtor.
        The simulated truth replays every option of every decision checked, so a large book
        is checked on a sample.
    progress
        ``progress(what, done, total)`` hears each phase (and the decisions asked,
        re-simulated).
    regret
        Also value every decision of the learnt policy with the simulator's true model, by
        the debtor's true kind (:class:`paycadence.training.regret.ProbedPolicy`): where it
        leaves value to the oracle (:attr:`BacktestResult.regret`).
    truth_replays, truth_jobs
        With ``truth_replays`` > 0: the true chance that each invoice the forecast check scores
        is late, by that many replays of its own luck in ``truth_jobs`` processes
        (:func:`paycadence.training.ceiling.true_outcomes`), kept in
        :attr:`BacktestResult.ceiling` and scored beside the model as ``truth``.
    """
    from paycadence.training.fitting import fit_models
    from paycadence.training.snapshots import cut_tables

    if days <= SCORED_BEFORE_END or history_days < 1:
        raise ValueError(f"need days > {SCORED_BEFORE_END} (the scored invoices' fates play "
                         f"out in the last {SCORED_BEFORE_END}) and history_days >= 1, got "
                         f"{days} and {history_days}")
    policy = policy or Policy()
    params = params or Params()
    world = resolve_world(world)
    total = history_days + days
    switch = start + dt.timedelta(days=history_days)
    end = start + dt.timedelta(days=total - 1)
    phases = 4 + ope + oracle
    step = progress or (lambda what, done=None, total=None: None)

    def run(after: DecisionPolicy):
        past = ScheduleLoggingPolicy(policy, exploration_share, seed)
        return simulate(n_debtors, days=total, seed=seed, start=start, policy=policy,
                        logging_policy=Switch(past, after, on=switch), world=world)

    def scored(name: str, tables) -> Outcome:
        got = outcome(name, tables, policy, start=start, end=end, scored_from=switch)
        logger.info("backtest %s: %s", name, got)
        return got

    step(f"company {seed}: {history_days} days logged, then the fixed schedule", 0, phases)
    fixed = run(ScheduleLoggingPolicy(policy, epsilon=0.0, seed=seed))
    known = cut_tables(fixed.tables, switch)  # the same in every run: the past is shared
    step(f"training the models on its past, as known on {switch}", 1, phases)
    models = fit_models(known, params, policy)

    def asked(n: int) -> None:
        step(f"company {seed} under the learnt policy: {n:,} decisions asked", 3, phases)

    out = [scored("fixed schedule", fixed.tables)]
    ceiling = None
    if truth_replays > 0:
        from paycadence.training.ceiling import first_seen, true_outcomes

        ceiling = true_outcomes(
            n_debtors, days, seed, scored=first_seen(
                fixed.tables, switch=switch, due_by=end - dt.timedelta(days=SCORED_BEFORE_END)),
            start=start, history_days=history_days, policy=policy, world=world,
            exploration_share=exploration_share, replays=truth_replays, jobs=truth_jobs)
    forecast = forecast_check(fixed.tables, models, switch=switch,
                              due_by=end - dt.timedelta(days=SCORED_BEFORE_END),
                              horizon_days=params.train.horizon_days, truth=ceiling)
    logged = fixed.decisions.filter(pl.col("decided_on") < switch)  # by the logging schedule
    del fixed
    truth = None
    if oracle or regret:  # the company's true debtors, drawn once for both
        from paycadence.data.simulate import company_debtors

        truth = company_debtors(n_debtors, days=total, seed=seed, start=start, world=world)
    if regret:
        from paycadence.training.regret import ProbedPolicy

        learnt = ProbedPolicy(policy, models, on_call=asked, start=start, value_from=switch,
                              debtors=truth)
    else:
        learnt = LearntPolicy(policy, models, on_call=asked)
    for k, (name, after) in enumerate((("no dunning", NoDunning()), ("learnt policy", learnt))):
        step(f"company {seed} under the {name} from {switch}", 2 + k, phases)
        out.append(scored(name, run(after).tables))
    best = share = None
    if oracle:
        from paycadence.training.oracle import OraclePolicy

        step(f"company {seed} under the oracle (the simulator's true model) from {switch}", 4,
             phases)
        best = scored("oracle", run(OraclePolicy(policy, truth, start=start,
                                                 value_from=switch)).tables)
        share = captured_share(out[-1], out[0], best, seed=seed)
    check = None
    if ope:
        step("off-policy estimates on the decisions logged in the past", 4 + oracle, phases)
        check = _ope_check(known, logged, models, switch, n_debtors, total, seed, start,
                           policy, world, exploration_share, progress, ope_debtors)
    return BacktestResult(out, history_days, models, learnt.calls, check,
                          paired_margin(out[-1], out[0], seed=seed), best, share, switch,
                          exploration_share, dict(learnt.decided_by),
                          dict(learnt.departures), dict(learnt.acted), forecast,
                          learnt.tallies if regret else None, ceiling)


def _ope_check(known, logged: pl.DataFrame, models: RiskModels | None, switch: dt.date,
               n_debtors: int, total: int, seed: int, start: dt.date, policy: Policy,
               world: World, exploration_share: float, progress: Progress | None,
               max_debtors: int | None = None) -> OpeCheck:
    """The off-policy estimates and the simulated truth on the decisions ``logged`` in the
    past (before ``switch``, which ``known`` is cut at) whose reward window
    (:data:`paycadence.training.ope.REWARD_DAYS`) ends before that day, so that their rewards
    are in the past every run shares; those of at most ``max_debtors`` debtors (a hash sample)
    when given."""
    from paycadence.training.bounded import sampled_debtors
    from paycadence.training.ope import REWARD_DAYS, evaluate_policy, rewards

    decisions = logged.filter(
        pl.col("decided_on") < switch - dt.timedelta(days=REWARD_DAYS)).sort(
        "decided_on", "debtor_id")
    decided = decisions["debtor_id"].n_unique()
    reward_log = None
    if max_debtors is not None and decided > max_debtors:
        # the reward model learns from the whole log, as train's would from its holdout;
        # only the sample's truth is simulated
        reward_log = (known, decisions)
        decisions = sampled_debtors(decisions.lazy(), max_debtors=max_debtors,
                                    seed=seed).collect()
        known = known.for_debtors(decisions["debtor_id"].unique())
    estimate = evaluate_policy(known, decisions, policy, models, reward_log=reward_log)
    truth = one_step_truth(n_debtors, total, seed, start, policy, decisions, estimate.options,
                           rewards(known, decisions, policy),
                           exploration_share=exploration_share, world=world, progress=progress)
    return OpeCheck(float(truth.mean()), estimate.dr.value, estimate.ips.value,
                    estimate.snips.value, estimate.logged.value, estimate.decisions,
                    decisions["debtor_id"].n_unique(), decided, estimate.dr.low,
                    estimate.dr.high, estimate.effective_n, estimate.gain.low,
                    estimate.gain.high)


#: MLflow experiment of backtest runs (the report shows the latest).
BACKTEST_EXPERIMENT = "paycadence-backtest"


def log_backtest(result: BacktestResult, *, debtors: int, days: int, seed: int,
                 world: str, policy: Policy) -> str:
    """Record a backtest as an MLflow run (experiment :data:`BACKTEST_EXPERIMENT`, tag
    ``kind=backtest``; params: the company, ``days`` of future, ``history_days`` of logged
    past, the switch day and the past's ``history_exploration``): per policy its net value,
    days late, unpaid at due + 90, contacts and reminders per invoice, hand-overs and
    violations (``fixed_schedule_net_value``, …), the learnt policy against the fixed
    schedule, the off-policy check, and ``p_late``'s AUC beside the references
    (``forecast_auc_model``, ``forecast_auc_laplace``, ``_shrunk``, ``_recent``). Returns the
    run id."""
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
                    "ope_dr_error": relative(c.dr, c.simulated), "ope_dr_low": c.dr_low,
                    "ope_dr_high": c.dr_high, "ope_effective_n": c.effective_n,
                    "ope_gain_low": c.gain_low, "ope_gain_high": c.gain_high}
    if result.forecast is not None:
        f = result.forecast
        metrics |= {f"forecast_auc_{name}": v for name, v in f.auc.items()}
        metrics |= {f"forecast_brier_{name}": v for name, v in f.brier.items()}
        metrics |= {f"forecast_days_mae_{name}": v for name, v in f.days_mae.items()}
        metrics |= {"forecast_ece_model": f.ece["model"]}
        metrics |= {"forecast_invoices": float(f.invoices)}
    with mlflow.start_run(run_name=f"backtest seed {seed}") as run:
        mlflow.set_tag("kind", "backtest")
        # a simulated company of its own, never a user's book (the report says so)
        mlflow.set_tag("book", f"simulated-{world}-seed{seed}")
        mlflow.log_params({"debtors": debtors, "days": days, "seed": seed, "world": world,
                           "history_days": result.history_days,
                           "switch_on": str(result.switch_on),
                           "history_exploration": result.history_exploration,
                           "exploration": policy.exploration.share})
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        return run.info.run_id


def relative(a: float, b: float) -> float:
    """(a − b) / |b|, NaN when b is 0."""
    return (a - b) / abs(b) if b else math.nan

"""A seeded simulator of a company's receivables, written as the five contract tables.

Debtors (``data/sim_world.py``) receive invoices and pay them — early, late, in parts, after a
reminder, through a payment plan or a collection agency, or never — dispute some, and change
behaviour now and then. A decision policy (by default the fixed schedule that explores, from
``data/sim_policy.py``) decides on each decision day what to do; the guard checks every
decision (``data/sim_engine.py`` runs the days). The output is what an ERP would export, plus
the decision log (waits included) and the debtors' hidden truth. docs/simulator.md has the
assumptions and numbers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from paycadence.config import Policy
from paycadence.data.sim_engine import TABLES, DebtorRun, advance
from paycadence.data.sim_policy import (
    DebtorContext,
    DecisionPolicy,
    ScheduleLoggingPolicy,
    schedule_decision_day,
)
from paycadence.data.sim_world import PROJECT_WORLD, Debtor, World, draw_debtor, issue_invoices
from paycadence.data.tables import COLUMNS, Tables
from paycadence.guard import DebtorState

logger = logging.getLogger(__name__)

#: Columns of ``decisions``: one row per debtor and decision day, waits included.
DECISIONS_SCHEMA = {
    "debtor_id": pl.String, "decided_on": pl.Date, "action": pl.String,
    "invoice_ids": pl.String, "propensity": pl.Float64, "explored": pl.Boolean,
    "step": pl.Int64, "schedule_action": pl.String, "n_allowed": pl.Int64,
}
#: Columns of ``truth``: each debtor's hidden traits.
TRUTH_SCHEMA = {
    "debtor_id": pl.String, "kind": pl.String, "segment": pl.String, "country": pl.String,
    "changed_on": pl.Date, "kind_after": pl.String, "preferred_channel": pl.String,
    "resp_email": pl.Float64, "resp_sms": pl.Float64, "resp_letter": pl.Float64,
    "resp_phone": pl.Float64, "pace": pl.Float64, "slow_lag_days": pl.Int64,
    "insolvent": pl.Boolean, "subscription": pl.Boolean, "term_days": pl.Int64,
    "mean_amount": pl.Float64, "created_on": pl.Date, "left_on": pl.Date,
    "opted_out": pl.String,
}


@dataclass(frozen=True)
class SimulationResult:
    """The contract tables, the decision log (waits included) and the debtors' hidden truth.

    Attributes
    ----------
    tables : Tables
        debtors, invoices, payments, actions, disputes (CONTRACT.md §1).
    decisions : polars.DataFrame
        One row per debtor and decision day (:data:`DECISIONS_SCHEMA`).
    truth : polars.DataFrame
        One row per debtor with its latent traits (:data:`TRUTH_SCHEMA`).
    """

    tables: Tables
    decisions: pl.DataFrame
    truth: pl.DataFrame


def simulate(
    n_debtors: int = 500,
    *,
    days: int = 730,
    seed: int = 1,
    start: dt.date = dt.date(2024, 1, 1),
    policy: Policy | None = None,
    logging_policy: DecisionPolicy | None = None,
    exploration_share: float = 0.10,
    only: Iterable[int] | None = None,
    world: World = PROJECT_WORLD,
    until: dt.date | None = None,
) -> SimulationResult:
    """Simulate ``n_debtors`` debtors over ``days`` days from ``start``.

    Parameters
    ----------
    n_debtors
        Number of debtors (each gets ids ``D00000`` …).
    days
        Length of the history, days; nothing is dated on or after ``start + days``.
    seed
        Seed of everything random. Debtor ``i`` gets its own trait and world streams from
        ``SeedSequence(seed)``, so its company-side randomness depends neither on the policy
        nor on the other debtors.
    start
        First day of the history.
    policy
        Rules, payment-plan terms and schedule (the shipped defaults when None); every
        decision is checked against its rules.
    logging_policy
        Who decides; default :class:`ScheduleLoggingPolicy` exploring with
        ``exploration_share``, its draws seeded from ``seed``. A policy with an
        ``is_decision_day(state, on, context)`` method is asked on the days it says, any
        other on the schedule's decision days. A policy with a ``decide_many(requests)``
        method (a list of ``decide``'s arguments, all of one morning, to a list of decisions)
        is asked once per morning for every debtor deciding on it, the debtors' runs stepped
        side by side; the rows are the same as when it is asked debtor by debtor.
    exploration_share
        ε of the default logging policy, in [0, 1]. Its timing exploration takes the policy
        file's ``exploration.timing``; with ε = 0 it is the fixed schedule, exploring nothing.
    only
        Simulate only these debtor indices of the company (each is exactly what it is in the
        whole company: its streams do not depend on the others).
    world
        The behavioural assumptions (:data:`~paycadence.data.sim_world.PROJECT_WORLD`, or
        another :class:`~paycadence.data.sim_world.World` such as ``OTHER_WORLD``).
    until
        Stop the runs before this day: the rows dated before it are exactly those of the
        whole ``days`` (the debtors, their invoices and every draw are those of the whole
        run), and nothing on or after it is simulated. For a question about the first days
        only, such as the 30-day reward of one decision.

    Returns
    -------
    SimulationResult

    Raises
    ------
    paycadence.data.sim_engine.PolicyError
        When the deciding policy returns an action the guard refuses.
    """
    if n_debtors < 0 or days < 1:
        raise ValueError(f"need n_debtors >= 0 and days >= 1, got {n_debtors} and {days}")
    policy = policy or Policy()
    decider = logging_policy or ScheduleLoggingPolicy(policy, exploration_share, seed)
    decision_day = getattr(decider, "is_decision_day", None) or _schedule_days(policy)
    trait_root, world_root = np.random.SeedSequence(seed).spawn(2)
    traits, worlds = trait_root.spawn(n_debtors), world_root.spawn(n_debtors)
    rows: dict[str, list[tuple]] = {name: [] for name in (*TABLES, "decisions")}
    debtors, truth = [], []
    together = hasattr(decider, "decide_many")
    runs = []
    for i in range(n_debtors) if only is None else sorted(set(only)):
        trait_rng = np.random.default_rng(traits[i])
        debtor = draw_debtor(i, trait_rng, start, days, world)
        issued = issue_invoices(debtor, trait_rng, start, days)
        run = DebtorRun(debtor, issued, np.random.default_rng(worlds[i]), start, days, policy,
                        decider, decision_day, None if until is None else (until - start).days)
        if together:
            runs.append(run)
        else:  # one debtor after another: only one debtor's run in memory at a time
            for name, part in run.run().items():
                rows[name].extend(part)
        debtors.append((debtor.debtor_id, debtor.country, debtor.segment, debtor.created_on,
                        ";".join(debtor.opted_out) or None))
        truth.append(_truth_row(debtor))
    if together:
        _side_by_side(runs, decider)
        for run in runs:
            for name, part in run.rows.items():
                rows[name].extend(part)
    frames = {name: pl.DataFrame(rows[name], schema=COLUMNS[name], orient="row")
              for name in TABLES}
    frames["debtors"] = pl.DataFrame(debtors, schema=COLUMNS["debtors"], orient="row")
    result = SimulationResult(
        Tables(**{name: frames[name] for name in ("debtors", *TABLES)}),
        pl.DataFrame(rows["decisions"], schema=DECISIONS_SCHEMA, orient="row"),
        pl.DataFrame(truth, schema=TRUTH_SCHEMA, orient="row"),
    )
    logger.info("simulated %d debtors over %d days: %d invoices, %d payments, %d actions, "
                "%d decisions", n_debtors, days, frames["invoices"].height,
                frames["payments"].height, frames["actions"].height, result.decisions.height)
    return result


def _side_by_side(runs: list[DebtorRun], decider) -> None:
    """Step every debtor's run day by day together, and ask ``decider.decide_many`` once per
    morning for all the debtors that need a decision on it (in debtor order).

    Debtors never interact and every random draw is the debtor's own (its world stream, a
    policy's per-debtor stream, a hash of debtor and day), so this gives exactly the rows of
    running them one after another, for a decider that decides each debtor as it would alone
    (a test checks it); only the number of calls differs — one per morning instead of one per
    debtor-morning.
    """
    steps = [run.steps() for run in runs]
    pending = {}
    for k, stepper in enumerate(steps):
        request = advance(stepper)
        if request is not None:
            pending[k] = request
    while pending:
        day = min(request[1] for request in pending.values())
        batch = [k for k, request in pending.items() if request[1] == day]
        decisions = decider.decide_many([pending[k] for k in batch])
        if len(decisions) != len(batch):
            raise ValueError(f"decide_many answered {len(decisions)} decisions for "
                             f"{len(batch)} debtors on {day}")
        for k, decision in zip(batch, decisions, strict=True):
            request = advance(steps[k], decision)
            if request is None:
                del pending[k]
            else:
                pending[k] = request


def company_debtors(n_debtors: int, *, days: int, seed: int,
                    start: dt.date = dt.date(2024, 1, 1),
                    world: World = PROJECT_WORLD) -> dict[str, Debtor]:
    """The hidden traits of the debtors :func:`simulate` draws for the same arguments, by id.

    Each debtor's traits come first from its own trait stream, so they are exactly those of
    the simulation (``truth.csv``), whatever policy runs it. For an oracle, never a policy.
    """
    trait_root, _ = np.random.SeedSequence(seed).spawn(2)
    out = {}
    for i, stream in enumerate(trait_root.spawn(n_debtors)):
        debtor = draw_debtor(i, np.random.default_rng(stream), start, days, world)
        out[debtor.debtor_id] = debtor
    return out


def _schedule_days(policy: Policy):
    def is_decision_day(state: DebtorState, on: dt.date, context: DebtorContext) -> bool:
        return schedule_decision_day(state, on, policy, context)

    return is_decision_day


def _truth_row(d: Debtor) -> tuple:
    r = d.response
    return (d.debtor_id, d.kind, d.segment, d.country, d.changed_on, d.kind_after, d.preferred,
            r["email"], r["sms"], r["letter"], r["phone"], d.pace, d.slow_lag,
            d.insolvent and "defaulting" in (d.kind, d.kind_after), d.subscription,
            d.term_days, d.mean_amount, d.created_on, d.left_on,
            ";".join(d.opted_out) or None)


def write_simulation(result: SimulationResult, out_dir: str | Path) -> list[Path]:
    """Write the five tables as contract CSV, plus ``decisions.csv`` and ``truth.csv``.

    Parameters
    ----------
    result
        What :func:`simulate` returned.
    out_dir
        Directory to write to (created when missing).

    Returns
    -------
    list of Path
        The seven files written; dates are ISO 8601.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    named = [*result.tables.items(), ("decisions", result.decisions), ("truth", result.truth)]
    paths = []
    for name, frame in named:
        path = out_dir / f"{name}.csv"
        frame.write_csv(path, date_format="%Y-%m-%d")
        paths.append(path)
    logger.info("wrote %d files to %s", len(paths), out_dir)
    return paths

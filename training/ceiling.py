"""The ceiling of the forecast check: the true chance that each scored invoice is paid late.

:func:`~paycadence.training.forecastcheck.forecast_check` scores ``p_late`` on a backtest's
future invoices against simple references. On the simulator the best possible forecast is
known too: the probability that the invoice is settled after its due date (and that it is
still not settled 90 days after it) given the world's latent state. :func:`true_outcomes`
computes it by replaying the invoice's own luck many times; a model is then judged by how
much of the way from the best reference to this ceiling it covers.

**What is known** (held fixed in every replay): the world and its mechanics; the debtor's
hidden traits (kind, a coming change of kind, pace, responsiveness, insolvency, terms); the
draws of every *other* invoice, past and future, and the logging policy's own draws — the
world's latent state; and everything the company's tables show on the forecast morning
``first_seen`` (invoices and disputes dated on or before it, payments and actions dated before
it: CONTRACT.md §1). From ``first_seen`` on the company runs the fixed schedule (no
exploration), as in :func:`~paycadence.training.backtest.run_backtest`'s scored run.

**What is random**: the scored invoice's own row of uniforms ``u`` (``data/sim_world.py``:
payment thresholds, partial payments and their shares, never-pay, dispute and its
resolution, plan acceptance and keeping, agency recovery), drawn from its distribution *given
that past*. The other invoices' draws are not redrawn: they are part of the latent state, and
they touch the scored invoice only through the dunning schedule after its due date (which
reminders are bundled, the rules' spacing between contacts), so holding them makes the
ceiling a forecaster that knows slightly more than the latent traits — an upper reference,
which is what a ceiling is for.

**How the past is conditioned on.** An invoice issued on ``first_seen`` has no past: its row
is drawn afresh. One issued earlier (opened before the switch day) has lived some days that
the forecast sees, and its draws must agree with them. Each replay starts on its issue morning
with a fresh row, except for the draws that the past pins exactly and that nothing else
depends on (the thresholds and shares of payments already made, the opening of a dispute
already opened, a resolution already known), which keep their realised values. The
threshold of the next payment is held off until the last day a payment would show on the
forecast morning (the Friday before a weekend for a b2b debtor, whose weekend payments are
booked on Monday); the replay is weighted by the chance it was not reached, ``exp(−c)`` for
the cumulative hazard ``c`` so far (mixed with never-pay by Bayes: ``π + (1 − π)·exp(−c)``),
never-pay is drawn from its posterior, and the threshold is drawn afresh from that day (the
exponential threshold is memoryless). A replay whose tables before the forecast morning differ
from the realised ones in anything else (a dispute, a plan, a contact the policy would not have
sent) is rejected. The estimate is the weighted mean over accepted replays. Rejection alone
would be exact too (``weighted=False``), but wasteful: an invoice a few days from its due date
has often been paid in most fresh pasts; a test checks the two agree.

**Analytic part.** Until the due date the fixed schedule never names the invoice, so whether
it is settled by then depends only on its own draws. Over its payment thresholds — the draws
that carry most of the chance — it is computed exactly from the daily hazards
(:func:`paid_by_due`), given the replay's state on the forecast morning and its other draws
(never-pay, dispute, which payments are partial and their shares); ``p_late_true`` averages
that instead of the replay's 0/1 outcome, which removes most of the Monte Carlo noise (a test
checks both agree). ``p_unpaid_90d_true`` is the replays' weighted share: after the due date
the schedule's reminders and hand-over move the invoice, bundled with the debtor's other
invoices and spaced by the rules, which only a replay of the whole debtor follows.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import polars as pl

from paycadence.config import Policy
from paycadence.data.sim_engine import DebtorRun, advance
from paycadence.data.sim_policy import ScheduleLoggingPolicy
from paycadence.data.sim_world import (
    N_EVENTS,
    PROJECT_WORLD,
    U_DISPUTE,
    U_DISPUTE_DAYS,
    U_DISPUTE_EARLY,
    U_DISPUTE_OFFSET,
    U_FRACTION,
    U_NEVER,
    U_PARTIAL,
    U_THRESHOLD,
    U_UNRESOLVED,
    U_WIDTH,
    World,
    bank_day,
    daily_hazard,
    draw_debtor,
    insolvent_on,
    issue_invoices,
    resolve_world,
)
from paycadence.data.tables import SETTLE_TOLERANCE
from paycadence.training.backtest import Switch

__all__ = ["OUTCOME_SCHEMA", "UNPAID_DAYS", "first_seen", "paid_by_due", "true_outcomes"]

logger = logging.getLogger(__name__)

#: Days after the due date at which "still unpaid" is read (``unpaid_90d`` of the scoring).
UNPAID_DAYS = 90
#: Columns of :func:`true_outcomes`.
OUTCOME_SCHEMA = {
    "invoice_id": pl.String, "first_seen": pl.Date, "p_late_true": pl.Float64,
    "p_unpaid_90d_true": pl.Float64, "replays": pl.Int64, "late": pl.Boolean,
    "unpaid_90d": pl.Boolean,
}
#: A uniform whose payment threshold (−log(1 − u) ≈ 36.7) no replay reaches: it holds a
#: payment off while the past is replayed.
HOLD = math.nextafter(1.0, 0.0)
#: A replay is tried at most this many times the replays asked for (rejections included).
MAX_TRIES = 20
#: Days simulated between two looks at whether the invoice is settled.
CHUNK_DAYS = 10


@dataclass(frozen=True)
class _Company:
    """What rebuilds any one debtor of the backtest's fixed-schedule run (picklable)."""

    n_debtors: int
    total_days: int
    seed: int
    start: dt.date
    switch: dt.date
    policy: Policy
    world: World
    exploration_share: float


def first_seen(tables, *, switch: dt.date, due_by: dt.date) -> pl.DataFrame:
    """The invoices the forecast check scores: due from ``switch`` to ``due_by`` and open on
    their ``first_seen`` morning, the later of the switch day and the issue day (no payment
    dated before it settles them). Columns ``invoice_id``, ``first_seen``, sorted."""
    from paycadence.data import settlements

    new = tables.invoices.filter(pl.col("due_date").is_between(switch, due_by)).with_columns(
        first_seen=pl.max_horizontal("issue_date", pl.lit(switch, dtype=pl.Date)))
    paid = tables.payments.join(new.select("invoice_id", "first_seen"), on="invoice_id").filter(
        pl.col("paid_on") < pl.col("first_seen"))
    settled = settlements(new.lazy(), paid.lazy()).filter(
        pl.col("settled_on").is_not_null()).select("invoice_id").collect()
    return new.join(settled, on="invoice_id", how="anti").select(
        "invoice_id", "first_seen").sort("invoice_id")


def true_outcomes(n_debtors: int, days: int, seed: int, *, scored: pl.DataFrame,
                  start: dt.date = dt.date(2024, 1, 1), history_days: int = 365,
                  policy: Policy | None = None, world: World | str = PROJECT_WORLD,
                  exploration_share: float = 0.10, replays: int = 100, jobs: int = 1,
                  analytic: bool = True, redraw: bool = True, weighted: bool = True
                  ) -> pl.DataFrame:
    """The true chance that each scored invoice is settled after its due date, and that it is
    not settled 90 days after it, given the world's latent state (see the module docstring).

    Parameters
    ----------
    n_debtors, seed, start, history_days, policy, world, exploration_share
        The company, exactly as :func:`~paycadence.training.backtest.run_backtest` builds it:
        ``history_days`` days logged by the schedule exploring ``exploration_share``, then
        the fixed schedule from the switch day ``start + history_days``; ``world`` may be a
        name (:func:`~paycadence.data.sim_world.resolve_world`).
    days
        The future, days from the switch day (``run_backtest``'s ``days``).
    scored
        ``invoice_id`` and ``first_seen`` (date: the forecast morning, on or after the switch
        day and the issue day, not after the due date), e.g. :func:`first_seen`.
    replays
        Accepted replays per invoice (each replays the debtor from the invoice's issue day).
    jobs
        Worker processes (debtors are shared out; each invoice's draws are its own, so the
        answer does not depend on it). They are spawned: a script calling this with
        ``jobs`` > 1 needs the ``if __name__ == "__main__":`` guard.
    analytic
        Average the exact chance of being settled by the due date given each replay's state
        (:func:`paid_by_due`) where it applies, instead of the replay's 0/1 outcome.
    redraw
        False: every replay keeps the invoice's realised draws, so each reproduces what was
        simulated (a check of the replays; ``p_*`` are then the realised 0/1 outcomes).
    weighted
        False: an invoice's past is replayed with fresh draws as they fall and the replays
        whose past differs are rejected, without holding the next payment off and weighting
        — exact too, but many tries are rejected (a check of the weighting).

    Returns
    -------
    polars.DataFrame
        :data:`OUTCOME_SCHEMA`, one row per scored invoice, sorted by ``invoice_id``:
        ``p_late_true``, ``p_unpaid_90d_true`` (probabilities), ``replays`` (accepted, of
        weight > 0), and the realised outcomes ``late`` and ``unpaid_90d`` of the simulated
        run (not settled by the due date; not settled :data:`UNPAID_DAYS` days after it).

    Raises
    ------
    ValueError
        On a bad argument, an invoice id the company does not have, a ``first_seen``
        before the switch day or the issue day, or after the due date, or an invoice due less
        than :data:`UNPAID_DAYS` days before the end.
    """
    if replays < 1 or jobs < 1 or days < 1 or history_days < 0:
        raise ValueError(f"need replays >= 1, jobs >= 1, days >= 1 and history_days >= 0, got "
                         f"{replays}, {jobs}, {days} and {history_days}")
    missing = {"invoice_id", "first_seen"} - set(scored.columns)
    if missing:
        raise ValueError(f"scored needs the columns {sorted(missing)}: the invoice and the "
                         "morning it is forecast on (see first_seen())")
    company = _Company(n_debtors, history_days + days, seed, start,
                       start + dt.timedelta(days=history_days), policy or Policy(),
                       resolve_world(world), exploration_share)
    by_debtor: dict[int, list[tuple[int, int]]] = {}
    for invoice_id, seen in scored.select("invoice_id", "first_seen").iter_rows():
        i, k = _parse(invoice_id, n_debtors)
        by_debtor.setdefault(i, []).append((k, (seen - start).days))
    tasks = sorted(by_debtor.items(), key=lambda item: -len(item[1]))
    began = time.perf_counter()
    how = (analytic, redraw, weighted)
    if jobs == 1 or len(tasks) < 2:
        rows = _debtors(company, tasks, replays, how)
    else:
        chunks = [tasks[j::jobs * 4] for j in range(min(len(tasks), jobs * 4))]
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            parts = pool.map(_debtors, [company] * len(chunks), chunks,
                             [replays] * len(chunks), [how] * len(chunks))
            rows = [row for part in parts for row in part]
    out = pl.DataFrame(rows, schema=OUTCOME_SCHEMA, orient="row").sort("invoice_id")
    logger.info("true outcomes of %d invoices of %d debtors, %d replays each, in %.1f s",
                out.height, len(tasks), replays, time.perf_counter() - began)
    return out


def _parse(invoice_id: str, n_debtors: int) -> tuple[int, int]:
    """(debtor index, invoice index) of a simulated invoice id ``D00012-0003``."""
    try:
        debtor, number = invoice_id.split("-")
        i, k = int(debtor[1:]), int(number) - 1
    except ValueError:
        raise ValueError(f"{invoice_id!r} is not a simulated invoice id such as "
                         "'D00012-0003'") from None
    if not (debtor.startswith("D") and 0 <= i < n_debtors and k >= 0):
        raise ValueError(f"{invoice_id!r} is not an invoice of a company of {n_debtors} "
                         "debtors")
    return i, k


def _debtor_run(company: _Company, i: int) -> DebtorRun:
    """Debtor ``i``'s run as :func:`~paycadence.data.simulate.simulate` builds it in the
    backtest's fixed-schedule run: its own trait and world streams, the logging schedule
    before the switch day and the fixed schedule from it (a test checks the rows agree)."""
    trait_root, world_root = np.random.SeedSequence(company.seed).spawn(2)
    trait_rng = np.random.default_rng(trait_root.spawn(company.n_debtors)[i])
    world_rng = np.random.default_rng(world_root.spawn(company.n_debtors)[i])
    c = company
    debtor = draw_debtor(i, trait_rng, c.start, c.total_days, c.world)
    issued = issue_invoices(debtor, trait_rng, c.start, c.total_days)
    decider = Switch(ScheduleLoggingPolicy(c.policy, c.exploration_share, c.seed),
                     ScheduleLoggingPolicy(c.policy, epsilon=0.0, seed=c.seed), on=c.switch)
    return DebtorRun(debtor, issued, world_rng, c.start, c.total_days, c.policy, decider,
                     decider.is_decision_day)


def _drive(run: DebtorRun, begin: int, end: int) -> None:
    """Simulate the days ``begin`` … ``end − 1`` of ``run``, its own decider deciding."""
    if begin >= end:
        return
    steps = run.steps(begin, end)
    request = advance(steps)
    while request is not None:
        request = advance(steps, run.decider.decide(*request))


def _fork(run: DebtorRun, policy: Policy) -> DebtorRun:
    """A copy of ``run`` with a copy of its decider (the logging policy's draws in step)."""
    decider = copy.deepcopy(run.decider, {id(policy): policy})
    return run.fork(decider, decider.is_decision_day)


def _settled(inv) -> bool:
    return inv.paid >= inv.amount - SETTLE_TOLERANCE


def _carry(run: DebtorRun, k: int, begin: int, end: int) -> bool:
    """Simulate from ``begin`` until invoice ``k`` is settled or ``end``; whether it is."""
    t = begin
    while t < end and not _settled(run.invoices[k]):
        _drive(run, t, min(end, t + CHUNK_DAYS))
        t += CHUNK_DAYS
    return _settled(run.invoices[k])


def _known(rows: dict[str, list[tuple]], sizes: dict[str, int], on: dt.date) -> tuple:
    """The rows added since ``sizes`` that the tables show on the morning of ``on``
    (CONTRACT.md §1: invoices and disputes dated on or before it, payments and actions before;
    a dispute's resolution only once it is dated on or before it)."""
    return (
        [r for r in rows["invoices"][sizes["invoices"]:] if r[2] <= on],
        [r for r in rows["payments"][sizes["payments"]:] if r[1] < on],
        [r for r in rows["actions"][sizes["actions"]:] if r[1] < on],
        [(r[0], r[1], r[2] if r[2] is not None and r[2] <= on else None)
         for r in rows["disputes"][sizes["disputes"]:] if r[1] <= on],
    )


def paid_by_due(run: DebtorRun, k: int, t: int) -> float | None:
    """Exact chance that invoice ``k`` of ``run`` is settled by its due date, over its payment
    thresholds, given the run's state on the morning of day index ``t`` (before that day) and
    the invoice's other draws (never-pay, dispute, which payments are partial and their
    shares); its next threshold counts from that morning. None when it is on a plan or with
    the agency.

    From ``t`` to the due date the fixed schedule names no invoice before it is due (its first
    reminder is on the due date or later, and a contact acts from the next day), so the
    invoice's daily hazard ``h`` is a known function of the day, its past contacts and its
    dispute (none while disputed; the resolution's boost after), and a payment on a day comes
    with chance ``h`` given none before. Day by day the chance of each state — payments made so
    far, whether the planned dispute opened, a weekend payment waiting for Monday — moves as
    the engine moves the invoice (a partial payment pays its share; a payment that is booked by
    the due date and pays the rest settles it; a b2b payment on a weekend lands on Monday).
    """
    inv, debtor = run.invoices[k], run.debtor
    if _settled(inv):
        return 1.0
    if inv.collection or inv.plan or run.policy.schedule.first_reminder < 0:
        return None
    if inv.never_pay:
        return 0.0  # it never pays by itself, and nothing else pays before the due date
    kinds, b2b, due, u = debtor.world.kinds, debtor.segment == "b2b", inv.due, inv.u
    opened = inv.disputed_from is not None
    dispute_day = inv.disputed_from if opened else inv.dispute_on
    resolve = inv.resolve_on

    def pay(paid: float, amount: float) -> float:  # as DebtorRun._pay books it
        return round(paid + round(min(amount, round(inv.amount - paid, 2)), 2), 2)

    def settles(paid: float) -> bool:
        return paid >= inv.amount - SETTLE_TOLERANCE

    # states: (payments so far, amount paid, dispute opened) → chance
    now: dict[tuple[int, float, bool], float] = {}
    waiting: list[tuple[int, float, tuple[int, float, bool], float]] = []  # booked payments
    if inv.pending is not None:
        until, amount = inv.pending
        if settles(pay(inv.paid, amount)):
            return float(until <= due)
        waiting.append((until, amount, (inv.events, inv.paid, opened), 1.0))
    else:
        now[(inv.events, inv.paid, opened)] = 1.0
    done = 0.0
    for day in range(t, due + 1):
        if day == dispute_day and not opened:  # it opens on what is open and not booked
            moved: dict[tuple[int, float, bool], float] = {}
            for (e, paid, _), mass in now.items():
                moved[(e, paid, True)] = moved.get((e, paid, True), 0.0) + mass
            now = moved
        kind = debtor.kind_on(run.dates[day])
        share = kinds[kind].partial
        booked = bank_day(day, run.weekday) if b2b else day
        hazard: dict[bool, float] = {}
        later: dict[tuple[int, float, bool], float] = {}
        for (e, paid, o), mass in now.items():
            if o and dispute_day <= day and (resolve is None or day < resolve):
                later[(e, paid, o)] = later.get((e, paid, o), 0.0) + mass
                continue  # disputed: no payment
            if o not in hazard:
                hazard[o] = daily_hazard(debtor, kind, day - due, inv.contacts, day,
                                         resolve if o else None)
            fire = mass * hazard[o]
            later[(e, paid, o)] = later.get((e, paid, o), 0.0) + mass - fire
            rest = round(inv.amount - paid, 2)
            amount = rest
            if e < N_EVENTS - 1 and rest > 20 and u[U_PARTIAL + e] < share:
                amount = round(rest * (0.35 + 0.35 * u[U_FRACTION + e]), 2)
            after = min(e + 1, N_EVENTS - 1)
            if booked > day:  # a weekend: booked on Monday, nothing more till then
                waiting.append((booked, amount, (after, paid, o), fire))
            elif settles(pay(paid, amount)):
                done += fire
            else:
                state = (after, pay(paid, amount), o)
                later[state] = later.get(state, 0.0) + fire
        for until, amount, (e, paid, o), mass in waiting:
            if until <= day:  # paid today, and no payment of its own today
                if settles(pay(paid, amount)):
                    done += mass
                else:
                    state = (e, pay(paid, amount), o)
                    later[state] = later.get(state, 0.0) + mass
        waiting = [w for w in waiting if w[0] > day]
        now = later
    return done


def _never_share(run: DebtorRun, k: int) -> float:
    """Prior chance that invoice ``k`` is never paid voluntarily (1 when insolvent)."""
    debtor, inv = run.debtor, run.invoices[k]
    kind = debtor.kind_on(run.dates[inv.issue])
    return 1.0 if insolvent_on(debtor, kind) else debtor.world.kinds[kind].never_pay


def _cut(run: DebtorRun, issue: int, seen: int) -> int:
    """The day from which a payment of the invoice would not yet show on the morning of
    ``seen``: ``seen``, or the weekend before it when a b2b payment then lands on or after."""
    cut = seen
    if run.debtor.segment == "b2b":
        while cut - 1 >= issue and bank_day(cut - 1, run.weekday) >= seen:
            cut -= 1
    return cut


def _debtors(company: _Company, tasks: list[tuple[int, list[tuple[int, int]]]],
             replays: int, how: tuple[bool, bool, bool]) -> list[tuple]:
    """The rows of :data:`OUTCOME_SCHEMA` for each (debtor index, [(invoice index, first
    seen day index)]); ``how``: (analytic, redraw, weighted)."""
    return [row for i, targets in tasks
            for row in _one_debtor(company, i, targets, replays, *how)]


def _one_debtor(company: _Company, i: int, targets: list[tuple[int, int]], replays: int,
                analytic: bool, redraw: bool, weighted: bool) -> list[tuple]:
    run = _debtor_run(company, i)
    switch = (company.switch - company.start).days
    plans = []
    for k, seen in targets:
        if k >= len(run.invoices):
            raise ValueError(f"{run.debtor.debtor_id} has {len(run.invoices)} invoices, not "
                             f"{k + 1}")
        inv = run.invoices[k]
        if not max(inv.issue, switch) <= seen <= inv.due:
            raise ValueError(f"{inv.invoice_id}: first_seen {run.dates[seen]} must be on or "
                             f"after the switch day {company.switch} and its issue day "
                             f"{run.dates[inv.issue]}, and not after its due date")
        if inv.due + UNPAID_DAYS >= run.stop:
            raise ValueError(f"{inv.invoice_id} is due {run.dates[inv.due]}: its fate is not "
                             f"known {UNPAID_DAYS} days later, before the run's end")
        plans.append((k, seen, inv.issue, _cut(run, inv.issue, seen)))
    # the realised run, copied on every morning a replay starts from or reads
    marks = sorted({d for _, _, issue, cut in plans for d in (issue, cut)})
    snaps, done = {}, 0
    for day in marks:
        _drive(run, done, day)
        snaps[day], done = _fork(run, company.policy), day
    last = max(run.invoices[k].due for k, *_ in plans) + UNPAID_DAYS + 1
    _drive(run, done, min(last, run.stop))
    rows = []
    for k, seen, issue, cut in plans:
        inv = run.invoices[k]
        late, unpaid = _realised(run, inv)
        at_issue = snaps[issue]
        sizes = {name: len(part) for name, part in at_issue.rows.items()}
        seen_on = run.dates[seen]
        shown = _known(run.rows, sizes, seen_on)
        rng = np.random.default_rng(np.random.SeedSequence([company.seed, 0xCE11, i, k]))
        before_switch = issue < switch
        kept: list[tuple[float, float, float]] = []  # (weight, late, unpaid) per replay
        tries = 0
        while len(kept) < replays and tries < MAX_TRIES * replays:
            tries += 1
            rep = _fork(at_issue, company.policy) if before_switch else at_issue.fork()
            if redraw:
                weight, q = _replay_redrawn(rep, k, inv, snaps[cut].invoices[k], issue, cut,
                                            seen, rng, analytic, weighted)
            else:
                rep.redraw(k, list(inv.u))  # the same draws: the realised run, replayed
                _drive(rep, issue, seen)
                weight, q = 1.0, None
            if weight <= 0.0:
                continue
            _drive(rep, seen, seen + 1)
            if _known(rep.rows, sizes, seen_on) != shown:
                continue
            on_time = _carry(rep, k, seen + 1, inv.due + 1)
            still = not on_time and not _carry(rep, k, inv.due + 1,
                                               inv.due + UNPAID_DAYS + 1)
            kept.append((weight, (1.0 - q) if q is not None else float(not on_time),
                         float(still)))
        if len(kept) < replays:
            logger.warning("%s: %d replays of %d tries agree with its past", inv.invoice_id,
                           len(kept), tries)
        w, p_late, p_unpaid = np.array(kept).reshape(-1, 3).T
        total = w.sum()
        rows.append((inv.invoice_id, seen_on,
                     float(w @ p_late / total) if total > 0 else math.nan,
                     float(w @ p_unpaid / total) if total > 0 else math.nan, len(kept), late,
                     unpaid))
    return rows


def _replay_redrawn(rep: DebtorRun, k: int, real, at_cut, issue: int, cut: int, seen: int,
                    rng: np.random.Generator, analytic: bool, weighted: bool
                    ) -> tuple[float, float | None]:
    """Give invoice ``k`` of ``rep`` (on its issue morning) a fresh row of draws, replay its
    past with its next payment held off up to ``cut``, then draw never-pay and that
    payment's threshold from their posterior; run on to the morning of ``seen``. Returns the
    replay's weight (0: its past cannot be the realised one) and, with ``analytic``,
    :func:`paid_by_due` on that morning. Not ``weighted``: the fresh draws run the past as
    they fall (weight 1; the caller rejects a past that differs)."""
    u = rng.random(U_WIDTH).tolist()
    held = at_cut.events  # payments made before the cut: their draws are pinned
    for e in range(held):
        for role in (U_THRESHOLD, U_PARTIAL, U_FRACTION):
            u[role + e] = real.u[role + e]
    if real.disputed_from is not None and real.disputed_from <= seen:  # its opening is known
        for role in (U_DISPUTE, U_DISPUTE_EARLY, U_DISPUTE_OFFSET):
            u[role] = real.u[role]
        if real.resolve_on is not None and real.resolve_on <= seen:
            u[U_UNRESOLVED], u[U_DISPUTE_DAYS] = real.u[U_UNRESOLVED], real.u[U_DISPUTE_DAYS]
    if not weighted:
        rep.redraw(k, u)
        _drive(rep, issue, seen)
        return 1.0, (paid_by_due(rep, k, seen) if analytic else None)
    never = _never_share(rep, k)
    u[U_NEVER] = HOLD  # a payer while the past is replayed (never-pay changes no row there)
    u[U_THRESHOLD + held] = HOLD
    rep.redraw(k, u)
    _drive(rep, issue, cut)
    inv = rep.invoices[k]
    if inv.events != held:
        return 0.0, None
    c = inv.cum_hazard if not inv.never_pay else 0.0
    if held == 0:  # no payment yet: never-pay, by Bayes on having paid nothing so far
        weight = never + (1.0 - never) * math.exp(-c)
        is_never = rng.random() * weight < never
    else:
        weight, is_never = math.exp(-c), False
    if never >= 1.0:
        u[U_NEVER] = rng.random()
    elif is_never:
        u[U_NEVER] = rng.uniform(0.0, never)
    else:
        u[U_NEVER] = never + (1.0 - never) * rng.random()
    u[U_THRESHOLD + held] = rng.random()  # memoryless: the rest of the threshold, from now
    rep.redraw(k, list(u))
    _drive(rep, cut, seen)
    return weight, (paid_by_due(rep, k, seen) if analytic else None)


def _realised(run: DebtorRun, inv) -> tuple[bool, bool]:
    """(late, unpaid 90 days after due) of the realised run, from its payment rows."""
    paid = [(on, amount) for invoice_id, on, amount, _ in run.rows["payments"]
            if invoice_id == inv.invoice_id]

    def settled_by(day: int) -> bool:
        last = run.dates[day]
        return sum(a for on, a in paid if on <= last) >= inv.amount - SETTLE_TOLERANCE

    return not settled_by(inv.due), not settled_by(inv.due + UNPAID_DAYS)

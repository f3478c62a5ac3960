"""The ceiling: the simulator's true chance that each scored invoice is paid late.

Replays keeping the realised draws give back the simulation; with fresh draws the truth is
calibrated against what happened and ranks it better than the debtor's own record; the exact
chance of being paid by the due date agrees with the replays' outcomes and with a hand count.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from paycadence.config import Policy
from paycadence.data import settlements
from paycadence.data.sim_policy import ScheduleLoggingPolicy
from paycadence.data.sim_world import (
    PROJECT_WORLD,
    U_DISPUTE,
    U_DISPUTE_EARLY,
    U_DISPUTE_OFFSET,
    U_NEVER,
    U_UNRESOLVED,
    U_WIDTH,
    bank_day,
    daily_hazard,
)
from paycadence.data.simulate import simulate
from paycadence.features.pit import features_at
from paycadence.training.backtest import Switch
from paycadence.training.ceiling import (
    UNPAID_DAYS,
    _Company,
    _debtor_run,
    _drive,
    first_seen,
    paid_by_due,
    true_outcomes,
)

START = dt.date(2024, 1, 1)
N, HISTORY, FUTURE, SEED = 60, 60, 120, 4
SWITCH = START + dt.timedelta(days=HISTORY)
END = START + dt.timedelta(days=HISTORY + FUTURE - 1)
DUE_BY = END - dt.timedelta(days=90)
REPLAYS = 100


@pytest.fixture(scope="module")
def company():
    """The backtest's fixed-schedule run of a small company: its past logged by the exploring
    schedule, its future by the fixed one (as ``run_backtest`` builds it)."""
    policy = Policy()
    decider = Switch(ScheduleLoggingPolicy(policy, 0.10, SEED),
                     ScheduleLoggingPolicy(policy, epsilon=0.0, seed=SEED), on=SWITCH)
    return simulate(N, days=HISTORY + FUTURE, seed=SEED, start=START, policy=policy,
                    logging_policy=decider).tables


@pytest.fixture(scope="module")
def scored(company):
    return first_seen(company, switch=SWITCH, due_by=DUE_BY)


@pytest.fixture(scope="module")
def truth(scored):
    return true_outcomes(N, FUTURE, SEED, scored=scored, start=START, history_days=HISTORY,
                         replays=REPLAYS)


def _ask(scored: pl.DataFrame, **kwargs) -> pl.DataFrame:
    return true_outcomes(N, FUTURE, SEED, scored=scored, start=START, history_days=HISTORY,
                         **kwargs)


def test_the_scored_invoices_are_those_the_forecast_check_sees(company, scored):
    """Due in the window, each on the first morning from the switch day that knows it, and
    open then: the invoices ``features_at`` answers on that morning."""
    new = company.invoices.filter(pl.col("due_date").is_between(SWITCH, DUE_BY)).with_columns(
        first_seen=pl.max_horizontal("issue_date", pl.lit(SWITCH, dtype=pl.Date)))
    seen = features_at(company, new.select("debtor_id", as_of="first_seen")).collect().join(
        new.select("invoice_id", "first_seen"), on="invoice_id").filter(
        pl.col("as_of") == pl.col("first_seen")).select("invoice_id", "first_seen")
    assert scored.height > 30
    assert scored.sort("invoice_id").equals(seen.sort("invoice_id"))
    assert (scored["first_seen"] == SWITCH).sum() > 5  # some have a past to condition on


def test_a_run_in_pieces_and_copies_gives_the_whole_run():
    """The engine's replay hooks change nothing: stepping a debtor in pieces, carrying on a
    copy, and giving an invoice its own draws back give the rows of one whole run."""
    c = _Company(N, HISTORY + FUTURE, SEED, START, SWITCH, Policy(), PROJECT_WORLD, 0.10)
    for i in range(6):
        whole = _debtor_run(c, i)
        _drive(whole, 0, whole.stop)
        pieces = _debtor_run(c, i)
        _drive(pieces, 0, 50)
        twin = pieces.fork()
        for k, inv in enumerate(twin.invoices):
            if inv.issue >= 50:
                twin.redraw(k, list(inv.u))
        _drive(twin, 50, 97)
        _drive(twin, 97, twin.stop)
        assert twin.rows == whole.rows
        _drive(pieces, 50, 60)  # the original carries on untouched by its copy
        assert len(pieces.rows["invoices"]) <= len(whole.rows["invoices"])


def test_replays_keeping_the_realised_draws_give_back_the_simulation(company, scored):
    got = _ask(scored, replays=2, redraw=False)
    done = settlements(company.invoices.lazy(), company.payments.lazy()).collect()
    real = scored.join(company.invoices.select("invoice_id", "due_date"), on="invoice_id").join(
        done, on="invoice_id", how="left").select(
        "invoice_id",
        late_t=pl.col("settled_on").is_null() | (pl.col("settled_on") > pl.col("due_date")),
        unpaid_t=pl.col("settled_on").is_null() | (
            pl.col("settled_on") > pl.col("due_date") + pl.duration(days=UNPAID_DAYS)))
    both = got.join(real, on="invoice_id")
    assert both.height == scored.height and (both["replays"] == 2).all()
    assert (both["late"] == both["late_t"]).all()
    assert (both["unpaid_90d"] == both["unpaid_t"]).all()
    assert (both["p_late_true"] == both["late"].cast(pl.Float64)).all()
    assert (both["p_unpaid_90d_true"] == both["unpaid_90d"].cast(pl.Float64)).all()
    assert both["late"].n_unique() == 2  # both outcomes happen: the check can fail


def test_the_truth_is_calibrated_on_what_happened(truth, scored):
    """Given the latent state the outcomes are independent coins with chances ``p``: their
    sum is within 4 standard deviations of ``Σ p`` (the replays' error added)."""
    assert truth.height == scored.height and (truth["replays"] == REPLAYS).all()
    for chance, outcome in (("p_late_true", "late"), ("p_unpaid_90d_true", "unpaid_90d")):
        p = truth[chance].to_numpy()
        y = truth[outcome].cast(pl.Float64).to_numpy()
        assert ((p >= 0) & (p <= 1)).all()
        sd = math.sqrt(float((p * (1 - p)).sum()) * (1 + 1 / REPLAYS))
        assert abs(y.sum() - p.sum()) <= 4 * sd + 1e-9, (chance, y.sum(), p.sum(), sd)


def test_the_truth_ranks_better_than_the_debtors_own_record(truth, company):
    """AUC of the truth above that of the debtor's smoothed share of late invoices settled
    before the forecast morning (the project's rule-based fallback)."""
    from sklearn.metrics import roc_auc_score

    inv = company.invoices.lazy()
    rows = []
    for invoice_id, seen in truth.select("invoice_id", "first_seen").iter_rows():
        debtor = invoice_id.split("-")[0]
        pay = company.payments.lazy().filter(pl.col("paid_on") < seen)
        past = inv.filter((pl.col("debtor_id") == debtor) & (pl.col("issue_date") < seen))
        done = past.join(settlements(past, pay), on="invoice_id").filter(
            pl.col("settled_on").is_not_null()).select(
            late=(pl.col("settled_on") > pl.col("due_date")).cast(pl.Float64)).collect()
        rows.append((done["late"].sum() + 1) / (done.height + 2))
    y = truth["late"].to_numpy()
    assert 0 < y.mean() < 1
    ceiling = roc_auc_score(y, truth["p_late_true"].to_numpy())
    reference = roc_auc_score(y, np.array(rows))
    assert ceiling > reference + 0.05 and ceiling > 0.8, (ceiling, reference)


def test_weighting_the_past_agrees_with_rejecting_every_other_past(company, scored):
    """For the invoices opened before the switch day, holding the next payment off and
    weighting by the chance it was not made (the fast way) gives the chances that plain
    rejection of every replay whose past differs from the realised one gives (exact but
    slow). Forgetting to condition on the past moves the sum by about 7 of these
    deviations here."""
    opened = company.invoices.filter(pl.col("issue_date") < SWITCH).select("invoice_id")
    past = scored.join(opened, on="invoice_id")
    n = 100
    fast = _ask(past, replays=n)
    slow = _ask(past, replays=n, weighted=False)
    assert past.height > 20 and (slow["replays"] == n).all()
    for chance in ("p_late_true", "p_unpaid_90d_true"):
        p, q = fast[chance].to_numpy(), slow[chance].to_numpy()
        sd = math.sqrt(float((p * (1 - p) + q * (1 - q)).sum()) / n)
        assert abs((p - q).sum()) <= 4 * sd, (chance, (p - q).sum(), sd)


def test_the_exact_chance_of_being_paid_by_the_due_date_agrees_with_the_replays(scored):
    """With the same draws, the exact chance (over the payment thresholds) and the replays'
    0/1 outcomes estimate the same thing: they agree within their sampling error; the chance
    of being unpaid at due + 90 is untouched."""
    some = scored.sort("invoice_id").gather_every(3)
    n = 200
    exact = _ask(some, replays=n)
    counted = _ask(some, replays=n, analytic=False)
    both = exact.join(counted, on="invoice_id", suffix="_mc")
    assert (both["p_unpaid_90d_true"] == both["p_unpaid_90d_true_mc"]).all()
    p, q = both["p_late_true"].to_numpy(), both["p_late_true_mc"].to_numpy()
    var = p * (1 - p) / n  # an upper bound of the variance of each difference
    assert abs((q - p).sum()) <= 4 * math.sqrt(var.sum()) + 1e-9
    assert (np.abs(q - p) <= 5 * np.sqrt(var) + 3 / n).all()
    assert not np.allclose(p, q)  # they are two estimates, not one


@pytest.mark.parametrize("segment", ["b2c", "b2b"])
def test_the_exact_chance_is_the_hand_count_for_a_plain_invoice(segment):
    """A payer's invoice with no dispute, from its issue morning: ``Σ S·h`` over the days whose
    payment is booked by the due date (a b2b weekend payment lands on Monday); disputed from
    the next day on for good, only the issue day's chance."""
    c = _Company(N, HISTORY + FUTURE, SEED, START, SWITCH, Policy(), PROJECT_WORLD, 0.10)
    for i in range(N):
        run = _debtor_run(c, i)
        kinds = {run.debtor.kind_on(run.dates[t]) for t in range(run.stop)}
        if run.debtor.segment == segment and run.invoices and kinds <= {"punctual",
                                                                         "forgetful"}:
            break
    k = len(run.invoices) // 2
    inv = run.invoices[k]
    _drive(run, 0, inv.issue)
    u = [0.5] * U_WIDTH
    u[U_DISPUTE], u[U_NEVER] = 0.999, 0.999  # no dispute, a payer
    run.redraw(k, u)
    got = paid_by_due(run, k, inv.issue)
    d, paid, still = run.debtor, 0.0, 1.0
    for t in range(inv.issue, inv.due + 1):
        h = daily_hazard(d, d.kind_on(run.dates[t]), t - inv.due, [], t)
        booked = bank_day(t, run.weekday) if segment == "b2b" else t
        paid += still * h * (booked <= inv.due)
        still *= 1 - h
    assert got == pytest.approx(paid, rel=1e-12) and 0 < got < 1
    # disputed from the day after issue, never resolved: only the issue day can pay
    u[U_DISPUTE], u[U_DISPUTE_EARLY], u[U_DISPUTE_OFFSET], u[U_UNRESOLVED] = 0.0, 0.0, 0.0, 0.0
    run.redraw(k, u)
    first = daily_hazard(d, d.kind_on(run.dates[inv.issue]), inv.issue - inv.due, [], inv.issue)
    booked = bank_day(inv.issue, run.weekday) if segment == "b2b" else inv.issue
    assert paid_by_due(run, k, inv.issue) == pytest.approx(first * (booked <= inv.due))


def test_worker_processes_give_the_same_answer(scored):
    """Each invoice's replays draw from their own stream: sharing debtors out to spawned
    processes changes nothing."""
    some = scored.filter(pl.col("invoice_id").str.slice(0, 6).is_in(
        scored["invoice_id"].str.slice(0, 6).unique().sort().head(3).to_list()))
    alone = _ask(some, replays=3)
    assert alone.height >= 3 and alone.equals(_ask(some, replays=3, jobs=2))


@pytest.mark.parametrize(("scored", "message"), [
    (pl.DataFrame({"invoice_id": ["D00001-0001"]}), "scored needs the columns"),
    (pl.DataFrame({"invoice_id": ["X-1"], "first_seen": [SWITCH]}), "not a simulated invoice"),
    (pl.DataFrame({"invoice_id": ["D09999-0001"], "first_seen": [SWITCH]}), "company of 60"),
    (pl.DataFrame({"invoice_id": ["D00001-0099"], "first_seen": [SWITCH]}), "invoices, not 99"),
    (pl.DataFrame({"invoice_id": ["D00001-0001"], "first_seen": [START]}), "must be on or after"),
], ids=["no first_seen", "not an id", "no such debtor", "no such invoice", "before the switch"])
def test_bad_input_says_what_is_wrong(scored, message):
    with pytest.raises(ValueError, match=message):
        _ask(scored, replays=1)


def test_an_invoice_whose_fate_the_run_does_not_reach_is_refused(company):
    late = company.invoices.filter((pl.col("issue_date") >= SWITCH)
                                   & (pl.col("due_date") > END - dt.timedelta(days=UNPAID_DAYS)))
    scored = late.head(1).select("invoice_id", first_seen="issue_date")
    with pytest.raises(ValueError, match="its fate is not known 90 days later"):
        _ask(scored, replays=1)

"""The settlement distribution: one set of hazards, every figure derived from it consistently."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paycadence.models.hazard import (
    CASH_WEEKS,
    EDGES,
    N_BINS,
    bin_probabilities,
    median_wait,
    survival,
    survival_at,
    training_rows,
)

hazards = arrays(np.float64, (5, N_BINS), elements=st.floats(0.0, 1.0))


@given(h=hazards)
@settings(max_examples=80, deadline=None)
def test_distribution_is_a_distribution(h):
    surv = survival(h)
    probs = bin_probabilities(surv)
    assert np.all(probs >= -1e-12)
    assert np.allclose(probs.sum(axis=1) + surv[:, -1], 1.0)
    assert np.all(np.diff(surv, axis=1) <= 1e-12), "survival never rises"


@given(h=hazards, t=st.floats(-10, 400))
@settings(max_examples=80, deadline=None)
def test_survival_between_edges_is_between_their_values(h, t):
    surv = survival(h)
    got = survival_at(surv, np.full(5, t))
    k = np.clip(np.searchsorted(EDGES, t, side="right") - 1, 0, N_BINS - 1)
    if t <= 0:
        assert np.all(got == 1.0)
    elif t >= EDGES[-1]:
        assert np.allclose(got, surv[:, -1])
    else:
        assert np.all(got <= surv[:, k] + 1e-12) and np.all(got >= surv[:, k + 1] - 1e-12)


def test_survival_at_an_edge_is_the_edge_value():
    surv = survival(np.full((1, N_BINS), 0.1))
    for k, edge in enumerate(EDGES):
        assert survival_at(surv, np.array([edge]))[0] == pytest.approx(
            1.0 if edge == 0 else surv[0, k])


@given(h=hazards)
@settings(max_examples=60, deadline=None)
def test_median_is_where_half_is_still_open(h):
    surv = survival(h)
    m = median_wait(surv)
    inside = m < EDGES[-1]
    at = survival_at(surv[inside], m[inside])
    # S(median) is ½, or the median sits where S jumps from above ½ to at most ½
    assert np.all((np.abs(at - 0.5) < 1e-9) | (at <= 0.5))
    before = survival_at(surv[inside], np.maximum(m[inside] - 1e-6, 0))
    assert np.all(before >= 0.5 - 1e-6)
    # a year: still more likely open than not just before the year ends
    late = survival_at(surv[~inside], np.full((~inside).sum(), EDGES[-1] - 1e-9))
    assert np.all(late >= 0.5 - 1e-9)


def test_certain_payment_in_week_two():
    h = np.zeros((1, N_BINS))
    h[0, 1] = 1.0
    surv = survival(h)
    probs = bin_probabilities(surv)[0, :CASH_WEEKS]
    assert probs[1] == 1.0 and probs.sum() == 1.0
    assert 7 <= median_wait(surv)[0] <= 14


def test_person_period_rows_censor_bins_cut_by_the_end_of_data():
    X = np.zeros((3, 1))
    past_due = np.array([0.0, 5.0, -3.0])
    # settles on day 10 (bin 1); never settles, 30 days observed; settles on day 2 but
    # only 5 days observed (bin 0 is cut by the data's end)
    t_settle = np.array([10.0, np.nan, 2.0])
    t_observed = np.array([100.0, 30.0, 5.0])
    rows, y, owner = training_rows(X, past_due, t_settle, t_observed)
    by_owner = {i: (rows[owner == i], y[owner == i]) for i in range(3)}
    r0, y0 = by_owner[0]
    assert list(r0[:, 1]) == [0.0, 7.0] and list(y0) == [0.0, 1.0]
    r1, y1 = by_owner[1]
    assert list(r1[:, 1]) == [0.0, 7.0, 14.0, 21.0] and not y1.any()  # bin 4 ends on day 35
    assert list(r1[:, 3]) == [5.0, 12.0, 19.0, 26.0]  # days past due at each bin's start
    r2, _ = by_owner[2]
    assert r2.shape[0] == 0, "an event in a censored bin is not counted"

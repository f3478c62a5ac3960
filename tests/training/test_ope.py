"""Off-policy evaluation: right on a bandit whose truth is known, and usable on a company."""

from __future__ import annotations

import numpy as np
import pytest

from paycadence.config import Policy
from paycadence.errors import InputError
from paycadence.training.ope import estimate, evaluate_policy, read_decisions, verdict


def _bandit(n=4000, seed=0):
    """Two actions logged uniformly; action 1 pays 10 + x, action 0 pays 5; the target always
    takes action 1, so its true value is 10 + E[x] = 10.5."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    a = rng.integers(0, 2, n)
    r = np.where(a == 1, 10 + x, 5.0) + rng.normal(0, 1, n)
    p = np.full(n, 0.5)
    w = (a == 1) / p
    return x, a, r, w, np.arange(n) // 4


def test_estimators_find_the_known_value():
    x, a, r, w, groups = _bandit()
    good_q = np.where(a == 1, 10 + x, 5.0)
    est, n_eff = estimate(r, w, 10 + x, good_q, groups)
    logged, ips, snips, dr, gain = est
    assert logged.value == pytest.approx(np.mean(r))
    assert gain.value == pytest.approx(dr.value - logged.value)
    assert gain.low <= 10.5 - 7.75 <= gain.high  # the log pays (10.5 + 5) / 2 in expectation
    for e in (ips, snips, dr):
        assert e.low <= 10.5 <= e.high, e
    assert dr.high - dr.low < ips.high - ips.low, "a good reward model narrows the interval"
    assert 1500 < n_eff < 2500


def test_doubly_robust_survives_a_wrong_reward_model():
    x, a, r, w, groups = _bandit(seed=1)
    wrong = np.zeros_like(r)
    est, _ = estimate(r, w, wrong, wrong, groups)
    assert est[3].low <= 10.5 <= est[3].high


def test_the_gain_over_the_log_is_told_from_the_debtors_it_happens_to_hold():
    """Rewards dominated by how much each debtor owes (one level for all its decisions, varying
    a hundredfold between debtors) and an action worth +10: which debtors the log holds moves
    the logged mean and DR together, so their own intervals overlap, while the gain's interval,
    from the same resamples, excludes zero. It is 5: the target always takes the +10 action,
    the log half the time."""
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(200), 20)
    level = rng.lognormal(6, 1.2, 200)[groups]
    a = rng.integers(0, 2, len(groups))
    r = level + 10 * a + rng.normal(0, 5, len(groups))
    q = level + 10 * a
    w = (a == 1) / 0.5
    est, _ = estimate(r, w, level + 10, q, groups)
    logged, dr, gain = est[0], est[3], est[4]
    assert dr.low < logged.high and logged.low < dr.high, "alone, the two cannot be told apart"
    assert 0 < gain.low <= 5 <= gain.high
    assert verdict(gain).startswith("earns more than the logging policy")
    # no gain at all: the target is the logging policy itself
    same, _ = estimate(r, np.ones_like(r), q, q, groups)
    assert same[4].low <= 0 <= same[4].high
    assert verdict(same[4]).startswith("not told apart")


def _rare_bandit(rng, n=3000):
    """The log takes action 0 with probability 0.98, actions 1 and 2 with 0.01 each (a contact
    drawn on a day the schedule waits); the target takes action 1 with 0.75 and action 0 with
    0.25. Action 1 pays 40 + 100 x on average, with heavy noise; its true value is known."""
    x = rng.random(n)
    a = rng.choice(3, size=n, p=[0.98, 0.01, 0.01])
    means = np.column_stack([20 + 10 * x, 40 + 100 * x, 30 + 0 * x])
    r = means[np.arange(n), a] + rng.normal(0, 60, n)
    target = np.tile([0.25, 0.75, 0.0], (n, 1))
    w = target[np.arange(n), a] / np.array([0.98, 0.01, 0.01])[a]
    truth = 0.25 * (20 + 5) + 0.75 * (40 + 50)
    return x, a, r, w, means, target, truth


@pytest.mark.parametrize(("model", "at_most"), [("exact", 1.05), ("off", 0.95), ("none", 0.8)])
def test_dr_self_normalised_per_action_is_steadier_where_propensities_are_tiny(
        monkeypatch, model, at_most):
    """A decision logged with propensity 0.01 and taken by the target with 0.75 weighs 75 in
    plain DR, and how many such decisions the log happens to hold moves plain DR by the reward
    model's error on each. Normalising the correction per action by what the target puts on
    that action keeps DR right and its error smaller wherever the reward model is off (20
    short on the rare action, or knowing nothing), and costs nothing where it is exact."""
    from paycadence.training import ope

    monkeypatch.setattr(ope, "BOOTSTRAP", 2)  # point estimates: the errors are over draws
    rng = np.random.default_rng(5)
    plain, normed = [], []
    for _ in range(200):
        x, a, r, w, means, target, truth = _rare_bandit(rng)
        q = {"exact": means, "off": means - np.array([0.0, 20.0, 0.0]),
             "none": np.zeros_like(means)}[model]
        direct = (target * q).sum(axis=1)
        q_logged = q[np.arange(len(a)), a]
        groups = np.arange(len(a)) // 10  # the point estimate does not depend on them
        plain.append(estimate(r, w, direct, q_logged, groups)[0][3].value - truth)
        normed.append(estimate(r, w, direct, q_logged, groups, action=a,
                               mass=target)[0][3].value - truth)
    plain, normed = np.array(plain), np.array(normed)

    def rmse(errors: np.ndarray) -> float:
        return float(np.sqrt(np.mean(errors ** 2)))

    # unbiased within the draws' own noise, and steadier than plain DR
    assert abs(normed.mean()) < 3 * normed.std() / np.sqrt(len(normed)) + 0.01 * truth
    assert rmse(normed) < at_most * rmse(plain), (rmse(normed), rmse(plain))


def test_evaluate_on_a_simulated_company(sim, tables, trained):
    decisions = sim.decisions.tail(1500)  # the latest ones: a quick but real evaluation
    result = evaluate_policy(tables, decisions, Policy(), trained.models)
    assert result.decisions == decisions.height
    assert 0 < result.supported <= result.decisions
    for e in (result.logged, result.ips, result.snips, result.dr):
        assert np.isfinite(e.value) and e.low <= e.value <= e.high
    assert sum(result.by_action.values()) == decisions.height


def test_a_sample_is_evaluated_with_the_reward_model_of_the_whole_log(
        monkeypatch, sim, tables, trained):
    """The backtest simulates the truth of a sample of debtors only; their DR estimate then
    takes its reward model from the whole log (as ``train`` fits it on its whole holdout),
    not from the sample's few decisions, where a contact the sample rarely logged is hardly
    learnt."""
    from paycadence.training import ope

    fitted = []
    real = ope._reward_model

    def spy(X, actions, r, seed):
        fitted.append(len(actions))
        return real(X, actions, r, seed)

    monkeypatch.setattr(ope, "_reward_model", spy)
    everything = sim.decisions.tail(1500)
    few = everything["debtor_id"].unique().sort().head(5)
    sample = everything.filter(everything["debtor_id"].is_in(few.implode()))
    alone = evaluate_policy(tables.for_debtors(few), sample, Policy(), trained.models)
    on_sample, fitted[:] = list(fitted), []
    whole = evaluate_policy(tables.for_debtors(few), sample, Policy(), trained.models,
                            reward_log=(tables, everything))
    # two cross-fitted halves, each fitted on the other half's rows
    assert sum(on_sample) == sample.height and sum(fitted) == everything.height
    assert len(fitted) == 2 and max(fitted) < everything.height
    assert alone.decisions == whole.decisions == sample.height
    assert alone.ips == whole.ips  # the weights do not depend on the reward model
    assert whole.dr.value != alone.dr.value
    assert whole.dr.low <= whole.dr.value <= whole.dr.high


def test_the_reward_model_never_predicts_a_debtor_it_learnt_from():
    """Cross-fitting: each debtor's decisions are predicted by the model fitted on the other
    half of the debtors, so changing a debtor's own rewards cannot move its predictions (a
    model fitted on them would learn their noise, and DR's correction would vanish), while
    changing the other half's does."""
    from paycadence.training.ope import cross_fitted

    rng = np.random.default_rng(3)
    n = 2000
    X = rng.random((n, 3))
    actions = list(rng.choice(["wait", "email"], n))
    groups = np.array([f"D{k // 10}" for k in range(n)])
    r = 100 * X[:, 0] + np.where(np.array(actions) == "email", 20.0, 0.0) + rng.normal(0, 5, n)
    q = cross_fitted(X, actions, r, groups, X, groups, seed=0)
    mine = groups == "D7"
    noisy = r.copy()
    noisy[mine] += rng.normal(0, 500, mine.sum())
    q_noisy = cross_fitted(X, actions, noisy, groups, X, groups, seed=0)
    np.testing.assert_array_equal(q["email"][mine], q_noisy["email"][mine])
    assert not np.array_equal(q["email"][~mine], q_noisy["email"][~mine])
    # and the model learnt the action's effect from the other half
    assert 10 < np.mean(q["email"] - q["wait"]) < 30


def test_decision_log_is_required_and_checked(tmp_path):
    with pytest.raises(InputError, match="no decisions.csv"):
        read_decisions(tmp_path)
    (tmp_path / "decisions.csv").write_text(
        "debtor_id,decided_on,action,propensity\nD1,2025-01-02,email,0\n")
    with pytest.raises(InputError, match="propensity outside"):
        read_decisions(tmp_path)


def test_the_simulated_truth_replays_each_logged_decision_exactly():
    """Taking the logged action again on the logged day (every run re-simulated: the logged
    invoice list is made not to match) reproduces each logged reward to the cent: the
    one-step truth the estimates are checked against is the simulator's own answer."""
    import datetime as dt

    import polars as pl

    from paycadence.data.simulate import simulate
    from paycadence.training.backtest import one_step_truth
    from paycadence.training.ope import rewards

    start, policy = dt.date(2024, 1, 1), Policy()
    history = simulate(15, days=200, seed=5, start=start, policy=policy)
    decisions = history.decisions.sort("decided_on", "debtor_id")
    logged = rewards(history.tables, decisions, policy)
    same = [{r["action"]: (1.0, tuple(filter(None, (r["invoice_ids"] or "").split(";"))))}
            for r in decisions.iter_rows(named=True)]
    forced = decisions.with_columns(invoice_ids=pl.lit("no such invoice"))
    truth = one_step_truth(15, 200, 5, start, policy, forced, same,
                           np.full(decisions.height, np.nan))
    assert decisions.height > 50 and np.isfinite(truth).all()
    np.testing.assert_allclose(truth, logged, atol=1e-6)
    # and a different action on a contact day changes what the debtor does
    contact = next(k for k, r in enumerate(decisions.iter_rows(named=True))
                   if r["action"] == "email")
    other = one_step_truth(15, 200, 5, start, policy, decisions[contact], [{"wait": (1.0, ())}],
                           logged[contact:contact + 1])
    assert other[0] != pytest.approx(logged[contact])

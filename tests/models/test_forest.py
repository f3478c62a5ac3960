"""A forest read in blocks gives ``Booster.predict``'s numbers bit for bit, split semantics and
links included, and hands what it does not reproduce back to LightGBM."""

from __future__ import annotations

import multiprocessing
import os

import lightgbm as lgb
import numpy as np
import pytest

from paycadence.models import forest
from paycadence.models.forest import Forest


def _booster(X, y, rounds: int = 80, **params) -> lgb.Booster:
    base = {"objective": "binary", "verbose": -1, "num_leaves": 31, "learning_rate": 0.1,
            "min_data_in_leaf": 20, "seed": 1}
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=rounds)


def _blocks(X: np.ndarray, size: int, vary: tuple[int, ...], seed: int = 1) -> np.ndarray:
    """Blocks of ``size`` rows: one row of ``X`` repeated, with the columns ``vary`` moving
    from row to row (as days move days past due), some of them onto NaN, zero and ±1e-40."""
    rng = np.random.default_rng(seed)
    out = np.repeat(X, size, axis=0)
    step = np.tile(np.arange(size, dtype=float), X.shape[0])
    for j in vary:
        out[:, j] += 0.15 * step
    odd = rng.random(out.shape[0])
    out[odd < 0.03, vary[0]] = np.nan
    out[(odd >= 0.03) & (odd < 0.06), vary[-1]] = 0.0
    out[(odd >= 0.06) & (odd < 0.08), vary[-1]] = 1e-40
    out[(odd >= 0.08) & (odd < 0.10), vary[-1]] = -1e-40
    return out


@pytest.mark.parametrize("params", [
    {"objective": "binary"},
    {"objective": "binary", "sigmoid": 0.7},
    {"objective": "cross_entropy"},
    {"objective": "regression"},
    {"objective": "binary", "zero_as_missing": True},  # missing type Zero
    {"objective": "binary", "use_missing": False},  # missing type None: NaN read as 0
])
@pytest.mark.parametrize("size", [1, 7, 60])
def test_blocks_give_lightgbm_s_numbers_bit_for_bit(data, params, size):
    X, y = data()
    booster = _booster(X, y, **params)
    made = Forest.of(booster)
    assert made is not None
    rows = _blocks(X[:211], size, vary=(0, 3, 4))[:-3]  # the last block is shorter
    expected = booster.predict(rows)
    assert np.array_equal(made.predict(rows, size, threads=1), expected)
    assert np.array_equal(made.predict(rows, size, threads=3), expected)
    assert np.array_equal(forest.predict(booster, rows, size), expected)


def test_every_missing_type_and_side_is_met(data):
    """The boosters above do split with each missing type and default side (else the test
    above would not test them)."""
    X, y = data()
    seen = set()
    for params in ({}, {"zero_as_missing": True}, {"use_missing": False}):
        made = Forest.of(_booster(X, y, **params))
        splits = made.feature >= 0
        seen |= set(zip(made.missing[splits].tolist(), made.default_left[splits].tolist(),
                        strict=True))
    # type None has no default side (NaN is read as 0 there)
    assert {(1, True), (1, False), (2, True), (2, False)} <= seen
    assert any(m == 0 for m, _ in seen)


def test_a_block_whose_rows_differ_everywhere_still_gives_each_row_its_own_number(data):
    X, y = data()
    booster = _booster(X, y)
    rows = X[:500]  # nothing shared: blocks of 50 unrelated rows
    assert np.array_equal(Forest.of(booster).predict(rows, 50), booster.predict(rows))


def test_what_a_forest_does_not_reproduce_is_left_to_lightgbm(data):
    X, y = data()
    Xc = X.copy()
    Xc[:, 1] = np.abs(np.nan_to_num(Xc[:, 1])) % 5
    categorical = lgb.train({"objective": "binary", "verbose": -1, "min_data_per_group": 5,
                             "cat_smooth": 1}, lgb.Dataset(Xc, y, categorical_feature=[1]), 40)
    assert any(t["num_cat"] for t in categorical.dump_model()["tree_info"])
    poisson = _booster(X, y, objective="poisson")  # a log link: not one of ours
    multiclass = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                           lgb.Dataset(X, (y + (X[:, 0] > 1)).astype(int)), 10)
    for booster in (categorical, poisson):
        assert Forest.of(booster) is None
        rows = _blocks((Xc if booster is categorical else X)[:50], 10, vary=(0,))
        assert np.array_equal(forest.predict(booster, rows, 10), booster.predict(rows))
    assert Forest.of(multiclass) is None


def test_the_wrong_number_of_features_is_refused_and_no_rows_give_none(data):
    X, y = data()
    made = Forest.of(_booster(X, y, rounds=5))
    with pytest.raises(ValueError, match="reads 8 features"):
        made.predict(X[:, :5], 4)
    assert made.predict(np.zeros((0, 8)), 4).shape == (0,)


def test_a_tree_of_one_leaf_adds_its_value_to_every_row():
    X = np.zeros((100, 3))
    y = np.full(100, 0.3)
    booster = lgb.train({"objective": "cross_entropy", "verbose": -1}, lgb.Dataset(X, y), 3)
    made = Forest.of(booster)
    assert (made.feature < 0).all()
    rows = np.random.default_rng(0).normal(size=(30, 3))
    assert np.array_equal(made.predict(rows, 6), booster.predict(rows))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_process_splits_its_predictions_over_threads_of_its_own(data):
    X, y = data()
    booster = _booster(X, y)
    rows = _blocks(X[:300], 20, vary=(0,))
    expected = booster.predict(rows)
    made = Forest.of(booster)
    assert np.array_equal(made.predict(rows, 20, threads=2), expected)  # the parent's pool
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        got = pool.apply_async(_threaded, (made, rows)).get(timeout=60)
    assert np.array_equal(got, expected)


def _threaded(made: Forest, rows: np.ndarray) -> np.ndarray:
    return made.predict(rows, 20, threads=2)


def test_a_leaf_that_is_not_a_number_leaves_the_booster_to_lightgbm(data):
    """A NaN leaf (a damaged model file) cannot be dumped as JSON: no forest, and LightGBM's
    own NaN reaches the caller, whose finiteness checks refuse it."""
    X, y = data()
    broken = _booster(X, y, rounds=5)
    broken.set_leaf_output(2, 0, float("nan"))
    assert Forest.of(broken) is None
    rows = _blocks(X[:20], 5, vary=(0,))
    got = forest.predict(broken, rows, 5)
    assert np.array_equal(got, broken.predict(rows), equal_nan=True)
    assert np.isnan(got).any()

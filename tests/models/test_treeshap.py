"""The SHAP tables give LightGBM's own ``pred_contrib`` values, split semantics included."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from paycadence.models import treeshap
from paycadence.models.risk import RiskModels


def _booster(X, y, **params) -> lgb.Booster:
    base = {"objective": "binary", "verbose": -1, "num_leaves": 15, "max_depth": 4,
            "learning_rate": 0.1, "min_data_in_leaf": 20, "seed": 1}
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=120)


def _splits(booster) -> list[dict]:
    """Every split node of the booster's trees (from ``dump_model``)."""
    out = []

    def walk(node):
        if "split_index" in node:
            out.append(node)
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return out


def _edge_rows(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """Rows whose values are exactly the model's thresholds, NaN, zero and ±tiny."""
    thresholds: dict[int, list[float]] = {}
    for node in _splits(booster):
        thresholds.setdefault(node["split_feature"], []).append(node["threshold"])
    rows = X[:200].copy()
    rng = np.random.default_rng(5)
    for f, values in thresholds.items():
        rows[rng.integers(0, len(rows), 60), f] = rng.choice(values, 60)
    rows[rng.integers(0, len(rows), 30), rng.integers(0, X.shape[1], 30)] = np.nan
    rows[rng.integers(0, len(rows), 30), rng.integers(0, X.shape[1], 30)] = 0.0
    rows[rng.integers(0, len(rows), 10), rng.integers(0, X.shape[1], 10)] = 1e-40
    rows[rng.integers(0, len(rows), 10), rng.integers(0, X.shape[1], 10)] = -1e-40
    return rows


@pytest.mark.parametrize("params", [
    {},  # the p_late shape: at most 4 levels, NaN and plain splits
    {"zero_as_missing": True},  # missing type Zero
    {"use_missing": False},  # missing type None: NaN is read as 0
    {"max_depth": 7, "num_leaves": 31},  # deeper trees, features repeated on a path
    {"min_data_in_leaf": 2000},  # trees of one leaf: all of it is the base
])
def test_tables_equal_lightgbm_pred_contrib(data, params):
    X, y = data()
    booster = _booster(X, y, **params)
    tables = treeshap.tables(booster)
    assert tables is not None
    rows = np.vstack([X, _edge_rows(booster, X)])
    ours = treeshap.contributions(tables, rows)
    theirs = booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    for n in (0, 1, treeshap.CHUNK + 1):  # rows are scored CHUNK at a time
        np.testing.assert_allclose(treeshap.contributions(tables, rows[:n]), theirs[:n],
                                   rtol=0, atol=1e-12)
    # the values add up to the raw score, which decides the same splits as LightGBM
    np.testing.assert_allclose(ours.sum(axis=1), booster.predict(rows, raw_score=True),
                               rtol=0, atol=1e-12)


def test_the_same_top_reasons_as_lightgbm(data):
    X, y = data(seed=3)
    booster = _booster(X, y)
    ours = treeshap.contributions(treeshap.tables(booster), X)[:, :-1]
    theirs = booster.predict(X, pred_contrib=True)[:, :-1]
    top = np.argsort(-np.abs(ours), axis=1, kind="stable")[:, :3]
    assert (top == np.argsort(-np.abs(theirs), axis=1, kind="stable")[:, :3]).all()


def test_categorical_splits_and_oversized_tables_use_lightgbm(data, monkeypatch):
    X, y = data()
    X[:, 6] = np.abs(np.round(X[:, 6] * 3))
    categorical = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15,
                             "min_data_per_group": 5, "cat_smooth": 1},
                            lgb.Dataset(X, y, categorical_feature=[6]), num_boost_round=40)
    assert any(t["decision_type"] == "==" for t in _splits(categorical))
    assert treeshap.tables(categorical) is None

    monkeypatch.setattr(treeshap, "MAX_TABLE", 100)
    assert treeshap.tables(_booster(X, y)) is None

    models = RiskModels(tuple(f"f{i}" for i in range(X.shape[1])),
                        {"late": categorical, "hazard": None}, {"hazard": 0.0})
    values, base = models.contributions(None, X=X[:50])
    theirs = categorical.predict(X[:50], pred_contrib=True)
    np.testing.assert_array_equal(values, theirs[:, :-1])
    np.testing.assert_array_equal(base, theirs[:, -1])


def test_risk_models_explain_from_tables(data):
    X, y = data(seed=7)
    booster = _booster(X, y)
    models = RiskModels(tuple(f"f{i}" for i in range(X.shape[1])),
                        {"late": booster, "hazard": None}, {"hazard": 0.0})
    models.warm()
    assert models.shap_tables("late") is not None
    values, base = models.contributions(None, X=X)
    theirs = booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(values, theirs[:, :-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(base, theirs[:, -1], rtol=0, atol=1e-12)

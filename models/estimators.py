"""scikit-learn estimators around LightGBM: ``__init__`` stores, ``fit`` learns, returns self."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

#: Rows × trees of a prediction from which it runs on every thread it is given: about half a
#: millisecond of one core's work. Below it, waking a second thread costs more than it saves.
#: Above it, on a stateless call of 200 debtors (a year of history each, two cores), the
#: rolled payment rates, the settlement hazard's 18 bins and the late risk of 675 invoices
#: each took 1.4–1.9× less time threaded (the whole call 311 → 213 ms, median of 20,
#: interleaved; 20,000 to 200,000 all gave 209–219 ms).
THREADED_FROM = 50_000


def predict_threads(booster: lgb.Booster, rows: int, threads: int = 0, cost: int = 1) -> int:
    """Threads to predict ``rows`` rows with ``booster``: ``threads`` (0: all cores) when the
    work, rows × trees × ``cost`` (``cost``: what one row costs in plain predictions), reaches
    :data:`THREADED_FROM`, else one. Rows are scored independently: the answers are the same
    whatever the number."""
    return threads if rows * booster.num_trees() * cost >= THREADED_FROM else 1


def _booster_params(est) -> dict:
    return {
        "learning_rate": est.learning_rate,
        "num_leaves": est.num_leaves,
        "max_depth": est.max_depth,
        "min_child_samples": est.min_child_samples,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,
        "verbose": -1,
        "seed": 0 if est.random_state is None else int(est.random_state),
    }


def _names(est) -> list[str] | str:
    names = getattr(est, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else "auto"


class _LightGBMParams(BaseEstimator):
    """The LightGBM knobs the estimators take (stored only, as scikit-learn wants)."""

    def __init__(self, n_estimators=300, learning_rate=0.05, num_leaves=31,
                 min_child_samples=40, random_state=None, early_stopping_rounds=None,
                 max_depth=-1):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth  # -1: no limit
        self.min_child_samples = min_child_samples
        self.random_state = random_state
        self.early_stopping_rounds = early_stopping_rounds


class LateRiskModel(ClassifierMixin, _LightGBMParams):
    """Binary LightGBM classifier for an invoice event (paid late, unpaid after 90 days).

    Missing feature values (NaN) are allowed: LightGBM routes them on its own.
    """

    def fit(self, X, y, sample_weight=None, eval_set=None):
        """Fit on features ``X`` (n, d) and binary labels ``y``; returns self.

        With ``eval_set=(X_val, y_val)`` and ``early_stopping_rounds``, boosting stops when the
        validation log-loss has not improved for that many rounds (at most ``n_estimators``);
        ``best_iteration_`` is the number of trees kept.
        """
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) > 2:
            raise ValueError("Only binary classification is supported. The type of the target "
                             f"is {type_of_target(y)}.")
        params = {**_booster_params(self), "objective": "binary"}
        if len(self.classes_) == 1:
            self.constant_ = float(encoded[0])
            self.booster_ = None
            return self
        self.constant_ = None
        data = lgb.Dataset(X, label=encoded, weight=sample_weight, feature_name=_names(self))
        valid, callbacks = [], []
        if eval_set is not None and self.early_stopping_rounds:
            X_val, y_val = eval_set
            X_val = validate_data(self, X_val, reset=False, ensure_all_finite="allow-nan",
                                  dtype=np.float64)
            y_val = np.searchsorted(self.classes_, np.asarray(y_val))
            if len(np.unique(y_val)) == 2:
                valid = [lgb.Dataset(X_val, label=y_val, reference=data)]
                callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        booster = lgb.train({**params, "metric": "binary_logloss"}, data,
                            num_boost_round=self.n_estimators, valid_sets=valid,
                            callbacks=callbacks)
        self.best_iteration_ = booster.best_iteration or self.n_estimators
        if valid:  # keep only the trees up to the best round
            booster = lgb.Booster(model_str=booster.model_to_string(
                num_iteration=self.best_iteration_))
        self.booster_ = booster
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    def predict_proba(self, X):
        """Probabilities of the two classes, shape (n, 2)."""
        check_is_fitted(self, "classes_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        if self.booster_ is None:
            p = np.full(X.shape[0], self.constant_)
        else:
            p = self.booster_.predict(X)
        return np.column_stack([1 - p, p])

    def predict(self, X):
        """Most likely class."""
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] >= 0.5).astype(int) if len(self.classes_) > 1
                             else np.zeros(len(proba), dtype=int)]

"""The value model: what each action today is worth for an open invoice, learnt from the log.

Three estimators, each with ``fit``/``predict`` like scikit-learn's:

:class:`PaymentRate`
    A daily payment model learnt from every open invoice-day of the book's history: the share
    of what is open that is paid on the day, given the invoice's and debtor's point-in-time
    features, its days past due, and its contact history *including the day's own action*
    (reminders so far, days since the last, the last one's channel, a plan offered, the
    debtor's contacts in the last 30 days). Actions the log tried in a situation (the schedule
    and its exploration) are what tells the model what they change there. Two are learnt, each
    from one half of the book's debtors: their mean is the value, their disagreement how sure
    it is (:class:`ValueModel`).
:class:`Continuation`
    What an invoice still open on a day went on to bring in, as the book went on from there.
:class:`Recovery`
    What the collection agency brings in, discounted, per unit handed over, learnt from the
    book's own hand-overs.

:func:`rolled_values` rolls the payment model forward: for each action (waiting included) it
builds the invoice's features on each of the next :data:`HORIZON_DAYS` days as they would be
if the action were taken today and nothing after, reads the daily payment rate, and sums the
money expected, discounted at the policy file's ``annual_cost_of_capital``. What is still open
after the horizon is valued by the continuation model, discounted from the horizon's end. The
result is the present value per unit open, so an action's worth for an invoice is
``open amount × (value(action) − value(wait))``; the decision subtracts the action's cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import lightgbm as lgb
import numpy as np

from paycadence.config import CONTACT_CHANNELS
from paycadence.features import FEATURES
from paycadence.models import forest
from paycadence.models.estimators import predict_threads

#: Channel codes of the ``last_channel`` input (NaN: never contacted).
CHANNEL_CODE = {c: float(k) for k, c in enumerate(CONTACT_CHANNELS)}
#: The payment model's inputs: the point-in-time features, then the last contact's channel.
VALUE_COLUMNS = (*FEATURES, "last_channel")
#: Days rolled forward one by one with the payment model; what is still open after them is
#: valued by the continuation model (:class:`Continuation`).
HORIZON_DAYS = 60
#: Days after today at which the payment rate is read: every one of the horizon. (A sparse
#: grid held between its days let one day's spike — an instalment day of the log, 35 days
#: after a plan offer — stand for ten, and turned a contact that loses into one that pays.)
GRID = np.arange(HORIZON_DAYS)
#: Bands of days past due in which the log's support for an action is counted.
BANDS = ((-10_000, -1), (0, 7), (8, 21), (22, 45), (46, 90), (91, 10_000))
#: Key of the support counts of exploring decisions of any action (the band's exploration),
#: per band and number of earlier contacts about the invoice (0, 1, 2, 3 or more):
#: ``counts[band * REMINDER_BUCKETS + min(contacts, REMINDER_BUCKETS - 1)]``.
EXPLORED = "explored"
REMINDER_BUCKETS = 4


def explored_slot(band: int, contacts: int) -> int:
    """Index in the :data:`EXPLORED` counts of a band and a number of earlier contacts."""
    return band * REMINDER_BUCKETS + min(max(int(contacts), 0), REMINDER_BUCKETS - 1)

_AT = {f: k for k, f in enumerate(VALUE_COLUMNS)}


def band_of(days_past_due: float) -> int:
    """Index in :data:`BANDS` of a number of days past due."""
    for k, (low, high) in enumerate(BANDS):
        if low <= days_past_due <= high:
            return k
    return len(BANDS) - 1


class PaymentRate:
    """Daily share paid of what is open (LightGBM, cross-entropy on a share in [0, 1]).

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, seed
        LightGBM settings.
    """

    def __init__(self, n_estimators: int = 150, learning_rate: float = 0.1,
                 num_leaves: int = 31, min_child_samples: int = 200, seed: int = 0):
        self.params = {"objective": "cross_entropy", "learning_rate": learning_rate,
                       "num_leaves": num_leaves, "min_child_samples": min_child_samples,
                       "seed": seed, "verbose": -1, "deterministic": True,
                       "force_row_wise": True, "max_bin": 63}
        self.n_estimators = n_estimators
        self.booster_: lgb.Booster | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
            ) -> PaymentRate:
        """Fit on rows in :data:`VALUE_COLUMNS` order and their share paid on the day."""
        data = lgb.Dataset(X, y, weight=sample_weight, feature_name=list(VALUE_COLUMNS),
                           free_raw_data=True)
        # one thread below half a million rows: faster than two on a shared machine
        threads = {"num_threads": 1 if X.shape[0] < 500_000 else 0}
        self.booster_ = lgb.train(self.params | threads, data,
                                  num_boost_round=self.n_estimators)
        return self

    def predict(self, X: np.ndarray, block: int = 1) -> np.ndarray:
        """Expected share paid on the day, per row. ``block``: the rows come in blocks of that
        many that share most features (:func:`rolled_rows`' days of one row), read a block at
        a time (:mod:`paycadence.models.forest`; the same numbers, less work)."""
        return forest.predict(self.booster_, X, block)


class Recovery:
    """Discounted share of an amount handed over that the agency recovers.

    A shallow LightGBM regressor when the book has at least :attr:`min_rows` hand-overs
    seen long enough, else their weighted mean (one number for every invoice).
    """

    min_rows = 200

    def __init__(self, seed: int = 0, n_estimators: int = 150):
        self.seed = seed
        self.n_estimators = n_estimators
        self.booster_: lgb.Booster | None = None
        self.mean_: float | None = None
        self.n_: int = 0

    def fit(self, X: np.ndarray, y: np.ndarray) -> Recovery:
        self.n_ = int(len(y))
        self.mean_ = float(np.mean(y)) if len(y) else None
        if len(y) >= self.min_rows:
            params = {"objective": "cross_entropy", "learning_rate": 0.05, "num_leaves": 7,
                      "min_child_samples": 40, "seed": self.seed, "verbose": -1,
                      "deterministic": True, "force_row_wise": True, "num_threads": 1}
            self.booster_ = lgb.train(params, lgb.Dataset(X, y, feature_name=list(
                VALUE_COLUMNS)), num_boost_round=self.n_estimators)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.booster_ is not None:
            return self.booster_.predict(X, num_threads=predict_threads(self.booster_,
                                                                        X.shape[0]))
        return np.full(X.shape[0], np.nan if self.mean_ is None else self.mean_)


def rolled_rows(X: np.ndarray, action: str, days: np.ndarray = GRID,
                cap: float | None = None) -> np.ndarray:
    """Rows of :data:`VALUE_COLUMNS` for every row of ``X`` (today's morning features) and
    every day in ``days``, as they would be if ``action`` were taken today and nothing after
    (row-major: row 0's days, then row 1's). ``wait`` takes nothing. Days past due (and the
    invoice's age) stop growing at ``cap``, the most the book's log has seen (a tree model
    read beyond its data only repeats its last leaf, on a handful of rows)."""
    n, g = X.shape[0], len(days)
    out = np.repeat(X, g, axis=0)
    j = np.tile(days.astype(np.float64), n)
    dpd, age = _AT["days_past_due"], _AT["age_days"]
    grow = j if cap is None else np.clip(np.minimum(out[:, dpd] + j, cap) - out[:, dpd], 0, None)
    out[:, dpd] += grow
    out[:, age] += grow
    mx = _AT["max_days_past_due"]
    out[:, mx] = np.fmax(out[:, mx] + grow, out[:, dpd])
    wd = _AT["as_of_weekday"]
    out[:, wd] = (out[:, wd] - 1 + j) % 7 + 1
    within = (j <= 30).astype(np.float64)
    c30 = _AT["contacts_30d"]
    out[:, c30] = out[:, c30] * within
    if action in CHANNEL_CODE:
        out[:, _AT["reminders_invoice"]] += 1.0
        out[:, _AT["reminders_debtor"]] += 1.0
        out[:, _AT["days_since_contact_invoice"]] = j
        out[:, _AT["days_since_contact"]] = j
        out[:, c30] += within
        out[:, _AT["last_channel"]] = CHANNEL_CODE[action]
        if action == "payment_plan":
            out[:, _AT["plan_offered"]] = 1.0
    else:
        for name in ("days_since_contact_invoice", "days_since_contact"):
            out[:, _AT[name]] += j  # NaN (never contacted) stays NaN
    return out


def flows(rates: np.ndarray, annual_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(present value per unit open of the next :data:`HORIZON_DAYS` days, share still open
    after them) of daily payment rates read on every day of the horizon (shape (n,
    HORIZON_DAYS), :data:`GRID`)."""
    daily = np.clip(rates, 0.0, 1.0)
    disc = math.exp(-annual_rate / 365) ** np.arange(HORIZON_DAYS)
    still = np.cumprod(np.column_stack([np.ones(len(daily)), 1.0 - daily]), axis=1)
    return (still[:, :-1] * daily * disc).sum(axis=1), still[:, -1]


class Continuation:
    """Value per unit open of an invoice from a day on, as the book went on from there: the
    payments that followed (an agency's net of its fee), discounted, ÷ what was open. It
    values what the payment model leaves open after :data:`HORIZON_DAYS`: the long run the
    log has seen, so that money after the horizon is counted, not dropped.
    """

    def __init__(self, n_estimators: int = 150, seed: int = 0):
        self.params = {"objective": "cross_entropy", "learning_rate": 0.05, "num_leaves": 15,
                       "min_child_samples": 100, "seed": seed, "verbose": -1,
                       "deterministic": True, "force_row_wise": True, "max_bin": 63,
                       "num_threads": 1}
        self.n_estimators = n_estimators
        self.booster_: lgb.Booster | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
            ) -> Continuation:
        data = lgb.Dataset(X, y, weight=sample_weight, feature_name=list(VALUE_COLUMNS))
        self.booster_ = lgb.train(self.params, data, num_boost_round=self.n_estimators)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster_.predict(X, num_threads=predict_threads(self.booster_, X.shape[0]))


def rolled_values(rates: tuple[PaymentRate, ...], after: Continuation, X: np.ndarray,
                  actions: tuple[str, ...], annual_rate: float, cap: float | None = None,
                  only: Mapping[str, np.ndarray] | None = None) -> list[dict[str, np.ndarray]]:
    """Per payment model of ``rates``: action → present value per unit open of each row of
    ``X`` (:data:`VALUE_COLUMNS` order, today's morning) if the action is taken today and
    nothing after for :data:`HORIZON_DAYS` days: the payment model's flows over them plus, for
    what is still open, the continuation's value on the last day, discounted. The rows are
    built and the continuation read once; one call of each booster.

    ``only``: action → the row numbers of ``X`` it is valued on (NaN on the others; an action
    not named is valued on every row), so that a call rolls forward only what its decisions
    read."""
    n = X.shape[0]
    at = {a: np.arange(n) if only is None or a not in only else np.asarray(only[a], dtype=int)
          for a in actions}
    sizes = [len(at[a]) for a in actions]
    cuts = np.cumsum([0, *sizes])
    if cuts[-1] == 0:
        return [{a: np.full(n, np.nan) for a in actions} for _ in rates]
    last = np.array([HORIZON_DAYS])
    rows = np.vstack([rolled_rows(X[at[a]], a, cap=cap) for a in actions])
    ends = np.clip(after.predict(np.vstack([rolled_rows(X[at[a]], a, last, cap)
                                            for a in actions])), 0.0, 1.0)
    disc = math.exp(-annual_rate * HORIZON_DAYS / 365)
    out = []
    for model in rates:
        daily = model.predict(rows, block=len(GRID)).reshape(-1, len(GRID))
        values = {}
        for k, a in enumerate(actions):
            paid, still = flows(daily[cuts[k]:cuts[k + 1]], annual_rate)
            values[a] = np.full(n, np.nan)
            values[a][at[a]] = paid + still * disc * ends[cuts[k]:cuts[k + 1]]
        out.append(values)
    return out


#: Actions the payment model values (a hand-over is valued by :class:`Recovery`).
VALUED = ("wait", *CONTACT_CHANNELS)


class ValueModel:
    """The estimators of one book and what they need to be read: the most days past due the
    log has seen (``cap``), the support of each action (logged exploring decisions per band
    of :data:`BANDS`) and the recovery's mean.

    ``rate_b``: a second payment model learnt from the other half of the book's debtors
    (``rate`` then from the first half). The values are then the mean of the two and
    :meth:`per_unit_gaps` says how far apart the two halves are on each action's advantage
    over waiting: the decision departs from the schedule only where both halves agree
    (:mod:`paycadence.models.policy.decision`). Without it (an older bundle) the gaps are 0.
    """

    def __init__(self, rate: PaymentRate, after: Continuation, recovery: Recovery,
                 cap: float, support: dict[str, list], rate_b: PaymentRate | None = None):
        self.rate, self.after, self.recovery = rate, after, recovery
        self.rate_b = rate_b
        self.cap, self.support = float(cap), support

    def boosters(self) -> dict[str, lgb.Booster | None]:
        return {"rate": self.rate.booster_, "continuation": self.after.booster_,
                "recovery": self.recovery.booster_,
                "rate_b": None if self.rate_b is None else self.rate_b.booster_}

    def meta(self) -> dict:
        """What the card keeps besides the boosters (:meth:`from_parts` reads it back)."""
        return {"cap": self.cap, "support": self.support, "recovery_mean": self.recovery.mean_,
                "recovery_n": self.recovery.n_}

    @classmethod
    def from_parts(cls, boosters: dict, meta: dict) -> ValueModel:
        rate, after, recovery = PaymentRate(), Continuation(), Recovery()
        rate.booster_, after.booster_ = boosters["rate"], boosters["continuation"]
        recovery.booster_ = boosters.get("recovery")
        recovery.mean_, recovery.n_ = meta.get("recovery_mean"), int(meta.get("recovery_n", 0))
        rate_b = None
        if boosters.get("rate_b") is not None:
            rate_b = PaymentRate()
            rate_b.booster_ = boosters["rate_b"]
        return cls(rate, after, recovery, meta["cap"], meta["support"], rate_b)

    def per_unit(self, X: np.ndarray, annual_rate: float) -> dict[str, np.ndarray]:
        """action → present value per unit open of each row (:data:`VALUE_COLUMNS` order) if
        it is taken today (:data:`VALUED`), and ``collection``: the agency's discounted
        recovery per unit handed over (NaN when the book never handed over)."""
        return self.per_unit_gaps(X, annual_rate)[0]

    def per_unit_gaps(self, X: np.ndarray, annual_rate: float,
                      only: Mapping[str, np.ndarray] | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(:meth:`per_unit`, gaps): for every action but waiting, half the difference between
        the two halves' advantage over waiting per unit open, ``½((a_A − wait_A) − (a_B −
        wait_B))`` (zeros with one payment model). Each half's advantage is the mean's ± its
        gap. ``only``: action → the rows it is valued on (:func:`rolled_values`; NaN
        elsewhere)."""
        models = (self.rate,) if self.rate_b is None else (self.rate, self.rate_b)
        halves = rolled_values(models, self.after, X, VALUED, annual_rate, self.cap, only)
        out = {a: sum(h[a] for h in halves) / len(halves) for a in VALUED}
        out["collection"] = self.recovery.predict(X) if X.shape[0] else np.zeros(0)
        if len(halves) == 1:
            return out, {a: np.zeros(X.shape[0]) for a in (*VALUED[1:], "collection")}
        a_, b_ = halves
        gaps = {a: 0.5 * ((a_[a] - a_["wait"]) - (b_[a] - b_["wait"])) for a in VALUED[1:]}
        gaps["collection"] = -0.5 * (a_["wait"] - b_["wait"])
        return out, gaps

"""The per-invoice forecasts: ``p_late``, the settlement-day distribution and what follows.

:class:`RiskModels` bundles two fitted LightGBM boosters (late payment, settlement hazard), the
calibration of ``p_late`` and the feature list they were trained on. It saves to plain LightGBM
text files plus a JSON card (no pickles), loads from the same, predicts on the frame
:func:`paycadence.features.invoice_features` returns, and gives exact SHAP contributions
(LightGBM's path-dependent TreeSHAP, read from tables by :mod:`paycadence.models.treeshap`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from paycadence.features import STILL_LATE_DAYS, UNPAID_DAYS
from paycadence.models import files, forest
from paycadence.models.calibration import Calibrator
from paycadence.models.estimators import predict_threads
from paycadence.models.hazard import (
    BIN_FEATURES,
    CASH_WEEKS,
    EDGES,
    N_BINS,
    bin_probabilities,
    every_bin,
    median_wait,
    survival,
    survival_at,
)
from paycadence.models.response import ACTION_FEATURES, RESPONSE_ACTIONS, with_action

logger = logging.getLogger(__name__)

#: The boosters: ``late`` (is the invoice paid after its due date), ``hazard``
#: (:mod:`paycadence.models.hazard`: when it is paid) and, when the history logged actions,
#: ``response`` (:mod:`paycadence.models.response`: what an action today changes).
TARGETS = ("late", "hazard")
OPTIONAL = ("response", "rate", "continuation", "recovery", "rate_b")
#: The value model's boosters (:mod:`paycadence.models.policy.value`) read the features and
#: the last contact's channel.
VALUE_KEYS = ("rate", "continuation", "recovery", "rate_b")
CARD = "card.json"
#: Snapshots whose person-period rows (one per bin, :func:`every_bin`) are scored at a time:
#: the rows of a whole holdout would be N_BINS copies of its matrix; the answers are the same.
HAZARD_BATCH = 20_000


def finite(what: str, values: np.ndarray) -> np.ndarray:
    """``values`` when every one is finite; else :class:`NonFiniteForecastError` naming ``what``
    and how many rows are not (a NaN leaf, an overflow: the caller falls back)."""
    ok = np.isfinite(values)
    if not ok.all():
        rows = ok.reshape(ok.shape[0], -1).all(axis=1) if ok.ndim else ok
        raise files.NonFiniteForecastError(
            f"{what} is not finite for {int((~rows).sum())} of {len(rows)} rows")
    return values


def _booster(model) -> lgb.Booster | None:
    return getattr(model, "booster_", model)


@dataclass(frozen=True)
class Forecast:
    """Forecasts for rows of a feature matrix (arrays of length n).

    ``p_late``: the invoice settles after its due date (1 for one past due, CONTRACT.md §4);
    ``p_open_7d``: it is still unpaid seven days after the decision day; ``risk``: the
    calibrated ``late`` booster itself — ``p_late`` before the due date, ``p_open_7d`` after
    it — the figure the explanations decompose. ``week_probs`` (n, 13): probability of
    settling in each of the next 13 weeks (week 1 is the decision day and the six after it);
    ``survival`` (n, bins + 1): P(still open) at each edge of
    :data:`paycadence.models.hazard.EDGES`.
    """

    p_late: np.ndarray
    expected_days_late: np.ndarray
    p_unpaid_90d: np.ndarray
    week_probs: np.ndarray
    survival: np.ndarray
    p_open_7d: np.ndarray
    risk: np.ndarray


@dataclass
class RiskModels:
    """The two boosters, the calibration of ``p_late`` and the features they expect.

    Attributes
    ----------
    features : tuple of str
        Column order the boosters were trained on (the hazard booster adds
        :data:`paycadence.models.hazard.BIN_FEATURES` after them).
    boosters : dict
        ``late`` and ``hazard`` → ``lightgbm.Booster`` (None: see ``constants``).
    constants : dict
        Constant predictions for a target whose training labels had one class only.
    calibrator : Calibrator
        Maps the ``late`` booster's probability to the calibrated ``p_late`` of an invoice not
        yet due.
    overdue_calibrator : Calibrator or None
        The same for an invoice past due, whose figure is ``p_open_7d``: each meaning is
        calibrated on its own rows (None: ``calibrator`` for both, as bundles saved before
        it did).
    card : dict
        Free metadata saved with the model (version, horizon, training data fingerprint...).
    threads : int
        Threads LightGBM predicts large batches with (0: all cores); small ones use one
        thread, where starting threads costs more than it saves (:meth:`_threads`). Rows are
        scored independently, so the answers are the same whatever the number.
    """

    features: tuple[str, ...]
    boosters: dict[str, lgb.Booster | None]
    constants: dict[str, float] = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    calibrator: Calibrator = field(default_factory=Calibrator)
    threads: int = 0
    overdue_calibrator: Calibrator | None = None
    #: :func:`paycadence.models.treeshap.tables` per booster, built at the first explanation
    _shap: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    #: the value model built from the boosters at its first use (``"value"`` → it or None)
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _threads(self, booster: lgb.Booster, rows: int, cost: int = 1) -> int:
        """Threads for ``booster`` on a batch of ``rows`` whose per-row cost is ``cost``
        plain predictions (:func:`~paycadence.models.estimators.predict_threads`)."""
        return predict_threads(booster, rows, self.threads, cost)

    @classmethod
    def from_estimators(cls, features, late, hazard, *, response=None, value=None,
                        calibrator: Calibrator | None = None, card=None,
                        overdue_calibrator: Calibrator | None = None) -> RiskModels:
        """Bundle fitted :class:`paycadence.models.estimators.LateRiskModel` (or boosters)
        and the book's :class:`~paycadence.models.policy.value.ValueModel` (``value``)."""
        boosters, constants = {"response": _booster(response)}, {}
        card = dict(card or {})
        if value is not None:
            boosters |= value.boosters()
            card["value"] = value.meta()
        for key, est in {"late": late, "hazard": hazard}.items():
            booster = _booster(est)
            boosters[key] = booster
            if booster is None:
                constants[key] = float(est.constant_)
        return cls(tuple(features), boosters, constants, card, calibrator or Calibrator(),
                   overdue_calibrator=overdue_calibrator)

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``<target>.txt`` booster files, ``card.json`` and ``checksums.json`` (the
        sha256 of each of them, checked by :meth:`load`); returns the directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for key, booster in self.boosters.items():
            if booster is not None:
                booster.save_model(directory / f"{key}.txt")
        card = {**self.card, "features": list(self.features), "constants": self.constants,
                "calibration": self.calibrator.to_dict(), "hazard_edges": EDGES.tolist()}
        if self.overdue_calibrator is not None:
            card["calibration_overdue"] = self.overdue_calibrator.to_dict()
        (directory / CARD).write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
        sums = files.checksums(directory, [CARD, *(f"{k}.txt" for k in self.boosters)])
        (directory / files.CHECKSUMS).write_text(json.dumps({"sha256": sums}, indent=2),
                                                 encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, checksums: dict[str, str] | None = None,
             probe=None) -> RiskModels:
        """Read a directory written by :meth:`save`, checking its files before LightGBM
        parses them (:mod:`paycadence.models.files`) and its outputs after.

        Parameters
        ----------
        checksums
            ``{file name: sha256}`` recorded at registration (the version's tag); else those
            of ``checksums.json``; a model saved without either is checked without them.
        probe
            Rows (a frame with the feature columns, or a matrix in :attr:`features` order;
            e.g. the registered input example) on which every output must be finite
            (:meth:`check_outputs`).

        Raises
        ------
        ModelFilesError
            When a file is missing, differs from its checksum, is not a whole LightGBM model
            (or LightGBM refuses or crashes on it, in a child process), the hazard bins differ
            from this version's, or a booster's features differ from the card's.
        NonFiniteForecastError
            When a forecast on the probe rows is NaN or infinite.
        """
        directory = Path(directory)
        expected = checksums if checksums is not None else files.recorded(directory)
        names = [CARD, *(f"{key}.txt" for key in (*TARGETS, *OPTIONAL))]
        read = {n: (directory / n).read_bytes() for n in names if (directory / n).is_file()}
        if CARD not in read:
            raise files.ModelFilesError(f"{CARD} is missing")
        if expected is not None:
            files.verify(read, expected)
        try:
            card = json.loads(read[CARD].decode("utf-8"))
            features = tuple(card.pop("features"))
            constants = dict(card.pop("constants", {}))
            calibrator = Calibrator.from_dict(card.pop("calibration", None))
            overdue = card.pop("calibration_overdue", None)
            overdue_calibrator = None if overdue is None else Calibrator.from_dict(overdue)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise files.ModelFilesError(f"{CARD} is damaged") from None
        if card.pop("hazard_edges", None) != EDGES.tolist():
            raise files.ModelFilesError(f"{CARD}: saved by a version with other settlement "
                                        "bins; retrain")
        texts = {}
        for key in (*TARGETS, *OPTIONAL):
            name = f"{key}.txt"
            if key in constants or (key in OPTIONAL and name not in read):
                continue
            if name not in read:
                raise files.ModelFilesError(f"{name} is missing")
            files.check_structure(name, read[name])
            texts[key] = read[name]
        files.parse_in_child({f"{key}.txt": text for key, text in texts.items()})
        boosters = dict.fromkeys((*TARGETS, *OPTIONAL))
        for key, text in texts.items():
            booster = lgb.Booster(model_str=text.decode("ascii"))
            want = features + {"hazard": BIN_FEATURES, "response": ACTION_FEATURES,
                               **dict.fromkeys(VALUE_KEYS, ("last_channel",))}.get(key, ())
            if tuple(booster.feature_name()) != want:
                raise files.ModelFilesError(f"{key}.txt: trained on other features than the "
                                            "card lists")
            boosters[key] = booster
        models = cls(features, boosters, constants, card, calibrator,
                     overdue_calibrator=overdue_calibrator)
        models.check_outputs(probe)
        return models

    def check_outputs(self, rows=None) -> None:
        """Every forecast, action response and SHAP value is finite on ``rows`` (a frame
        with the feature columns or a matrix in :attr:`features` order), a row of zeros and
        a row of missing values (but the days past due).

        Raises
        ------
        NonFiniteForecastError
            Naming the first output that is not.
        """
        d = len(self.features)
        extra = np.vstack([np.zeros(d), np.full(d, np.nan)])
        extra[1, self.features.index("days_past_due")] = 0.0  # always known when serving
        if rows is not None and hasattr(rows, "columns"):  # a frame: its feature columns
            missing = [f for f in self.features if f not in rows.columns]
            if missing:
                raise files.ModelFilesError(f"the input example lacks {missing[:3]}")
            rows = np.column_stack([np.asarray(rows[f], dtype=np.float64)
                                    for f in self.features])
        X = extra if rows is None or not len(rows) else np.vstack(
            [np.asarray(rows, dtype=np.float64).reshape(-1, d), extra])
        self.predict_matrix(X)
        if self.has_response:
            self.responses(X, ("wait", *RESPONSE_ACTIONS))
        if self.value_model is not None:
            per_unit = self.value_model.per_unit(np.column_stack([X, np.full(len(X), np.nan)]),
                                                 0.08)
            for action, values in per_unit.items():
                if action != "collection" or self.value_model.recovery.mean_ is not None:
                    finite(f"the value of {action}", values)
        self.contributions(None, X=X)

    # -- prediction ------------------------------------------------------------------------
    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The feature matrix in training order; a missing column is an error, not a guess."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"feature frame lacks {missing}")
        return frame.select(self.features).to_numpy().astype(np.float64, copy=False)

    def _raw(self, key: str, X: np.ndarray) -> np.ndarray:
        booster = self.boosters[key]
        if booster is None:
            return np.full(X.shape[0], self.constants[key])
        return booster.predict(X, num_threads=self._threads(booster, X.shape[0]))

    def predict(self, frame: pl.DataFrame, X: np.ndarray | None = None) -> pl.DataFrame:
        """Forecasts for every row of a feature frame (``X``: its :meth:`matrix`, when the
        caller has it already).

        Returns
        -------
        polars.DataFrame
            ``invoice_id``, ``debtor_id``, ``p_late`` (calibrated; 1 once past due),
            ``p_open_7d`` (still unpaid seven days after ``as_of``), ``expected_days_late``
            (days after the due date; never before ``as_of``), ``expected_settled_on`` (date,
            ≥ ``as_of``), ``p_unpaid_90d`` (1 once the invoice is already 90 days overdue and
            open) and ``cash_weeks``: the expected payment in each of the next 13 weeks
            (currency; open amount × probability of settling that week).
        """
        if frame.height == 0:
            return frame.select("invoice_id", "debtor_id").with_columns(
                p_late=pl.lit(None, pl.Float64), p_open_7d=pl.lit(None, pl.Float64),
                expected_days_late=pl.lit(None, pl.Float64),
                expected_settled_on=pl.lit(None, pl.Date), p_unpaid_90d=pl.lit(None, pl.Float64),
                cash_weeks=pl.lit(None, pl.List(pl.Float64)))
        f = self.predict_matrix(self.matrix(frame) if X is None else X)
        cash = f.week_probs * frame["open_amount"].to_numpy()[:, None]
        return frame.select("invoice_id", "debtor_id", "as_of").with_columns(
            p_late=pl.Series(f.p_late),
            p_open_7d=pl.Series(f.p_open_7d),
            expected_days_late=pl.Series(np.round(f.expected_days_late, 2)),
            p_unpaid_90d=pl.Series(f.p_unpaid_90d),
            cash_weeks=pl.Series(np.round(cash, 2)).cast(pl.List(pl.Float64)),
            wait=pl.Series(np.round(f.expected_days_late - frame["days_past_due"].to_numpy())),
        ).with_columns(
            expected_settled_on=pl.col("as_of") + pl.duration(days=pl.col("wait").cast(pl.Int64))
        ).select("invoice_id", "debtor_id", "p_late", "p_open_7d", "expected_days_late",
                 "expected_settled_on", "p_unpaid_90d", "cash_weeks")

    def predict_matrix(self, X: np.ndarray) -> Forecast:
        """:class:`Forecast` for a matrix in :attr:`features` order.

        The calibrated ``late`` booster learnt both meanings of lateness from the snapshots
        (:func:`paycadence.features.label`): settling after the due date for an invoice not yet
        due — its ``p_late`` — and still unpaid seven days later for one past due — its
        ``p_open_7d``; an invoice past due has ``p_late`` 1, and one not yet due its
        ``p_open_7d`` from the settlement distribution. Everything else follows from the
        settlement hazards, so ``expected_days_late`` (days past due + the median wait: the
        invoice is as likely paid by then as not), ``p_unpaid_90d`` and the weekly
        probabilities are one distribution seen three ways.
        """
        past_due = X[:, self.features.index("days_past_due")]
        overdue = past_due > 0
        risk = np.clip(self.calibrate(self._raw("late", X), overdue), 0.0, 1.0)
        if self.boosters["hazard"] is None:
            hazards = np.full((X.shape[0], N_BINS), self.constants["hazard"])
        else:
            hazards = np.empty((X.shape[0], N_BINS))
            for at in range(0, X.shape[0], HAZARD_BATCH):  # every bin of a batch at a time
                rows = every_bin(X[at:at + HAZARD_BATCH], past_due[at:at + HAZARD_BATCH])
                # each invoice's bins are a block of rows that share all but the bin's
                hazards[at:at + HAZARD_BATCH] = forest.predict(
                    self.boosters["hazard"], rows, N_BINS, self.threads).reshape(-1, N_BINS)
        surv = survival(hazards)
        # settled on day D + t with t ≥ 91 − days past due ⇔ still open 90 days after due
        p_unpaid = survival_at(surv, UNPAID_DAYS + 1 - past_due)
        days = past_due + median_wait(surv)
        finite("p_late", risk)
        finite("the settlement distribution", surv)
        finite("expected_days_late", days)
        finite("p_unpaid_90d", p_unpaid)
        # still open on day 8 after the decision day ⇔ unpaid seven days after it
        open_7d = np.where(overdue, risk, survival_at(surv, STILL_LATE_DAYS + 1))
        return Forecast(np.where(overdue, 1.0, risk), days, p_unpaid,
                        bin_probabilities(surv)[:, :CASH_WEEKS], surv, open_7d, risk)

    def calibrate(self, p: np.ndarray, overdue: np.ndarray) -> np.ndarray:
        """The ``late`` booster's probabilities ``p`` calibrated: by :attr:`calibrator` where
        the invoice is not yet due, by :attr:`overdue_calibrator` (when there is one) where
        ``overdue``."""
        p = np.asarray(p, dtype=np.float64)
        if self.overdue_calibrator is None:
            return self.calibrator.apply(p)
        overdue = np.asarray(overdue, dtype=bool)
        out = np.empty_like(p)
        out[~overdue] = self.calibrator.apply(p[~overdue])  # each row through one map only
        out[overdue] = self.overdue_calibrator.apply(p[overdue])
        return out

    @property
    def value_model(self):
        """The book's :class:`~paycadence.models.policy.value.ValueModel`, or None when the
        bundle has none (a history without a log to learn from, an older bundle)."""
        if "value" not in self._derived:
            from paycadence.models.policy.value import ValueModel

            have = self.boosters.get("rate") is not None and \
                self.boosters.get("continuation") is not None and "value" in self.card
            self._derived["value"] = ValueModel.from_parts(self.boosters, self.card["value"]) \
                if have else None
        return self._derived["value"]

    @property
    def has_response(self) -> bool:
        """Whether an action-response model was learnt (the history logged actions)."""
        return self.boosters.get("response") is not None

    def response(self, X: np.ndarray, action: str) -> np.ndarray:
        """P(settled within 14 days | features ``X``, ``action`` today), per row."""
        booster = self.boosters.get("response")
        if booster is None:
            raise ValueError("no action-response model in this bundle")
        return finite(f"the response to {action}", booster.predict(
            with_action(X, action), num_threads=self._threads(booster, X.shape[0])))

    def responses(self, X: np.ndarray, actions: tuple[str, ...]) -> dict[str, np.ndarray]:
        """:meth:`response` for several actions, in one call of the booster (for a few rows,
        calling LightGBM costs more than scoring them); the same values, row for row."""
        booster = self.boosters.get("response")
        if booster is None:
            raise ValueError("no action-response model in this bundle")
        stacked = np.vstack([with_action(X, a) for a in actions])
        scores = finite("the action responses", booster.predict(
            stacked, num_threads=self._threads(booster, stacked.shape[0])))
        n = X.shape[0]
        return {a: scores[k * n:(k + 1) * n] for k, a in enumerate(actions)}

    def contributions(self, frame: pl.DataFrame, key: str = "late",
                      X: np.ndarray | None = None):
        """Exact TreeSHAP values of one target's raw output (log-odds for binary targets);
        ``X`` is the frame's :meth:`matrix` when the caller has it already.

        Read from the booster's SHAP tables (:mod:`paycadence.models.treeshap`, several
        times faster than LightGBM's ``pred_contrib``, equal to it up to rounding); a
        booster the tables cannot hold (categorical splits, very deep trees) uses
        ``pred_contrib``.

        Returns
        -------
        (values, base)
            ``values`` has shape (n, d) in the order of :attr:`features`; ``base`` has shape
            (n,). ``base + values.sum(axis=1)`` equals the raw model output (before the
            monotone calibration of ``p_late``, which keeps the order and sign of reasons).
        """
        X = self.matrix(frame) if X is None else X
        booster = self.boosters[key]
        if booster is None:
            return np.zeros_like(X), np.full(X.shape[0], self.constants[key])
        tables = self.shap_tables(key)
        if tables is not None:
            from paycadence.models import treeshap  # numba: imported when first needed

            contrib = treeshap.contributions(tables, X)
        else:
            # a row's SHAP values cost about 64 of its plain predictions (~0.25 ms a row
            # against ~4 µs for the p_late model): threaded from a few rows
            contrib = booster.predict(X, pred_contrib=True,
                                      num_threads=self._threads(booster, X.shape[0], cost=64))
        finite(f"the SHAP values of {key}", contrib)
        return contrib[:, :-1], contrib[:, -1]

    def shap_tables(self, key: str = "late"):
        """The SHAP tables of booster ``key`` (built once; None when it cannot have them)."""
        if key not in self._shap:
            from paycadence.models import treeshap

            booster = self.boosters[key]
            try:
                self._shap[key] = None if booster is None else treeshap.tables(booster)
            except ValueError:  # LightGBM's JSON dump of a NaN or infinite leaf: unreadable
                logger.warning("the %s booster's SHAP tables cannot be built (a leaf value is "
                               "not a number): LightGBM's pred_contrib explains it", key)
                self._shap[key] = None
        return self._shap[key]

    def warm(self) -> None:
        """Build what the first explanation and the first decision need (the ``late``
        booster's SHAP tables, the forests of the hazard and payment models, the compiled
        kernels), so that no call waits for it."""
        self.contributions(None, X=np.zeros((1, len(self.features))))
        for key in ("hazard", "rate", "rate_b"):
            made = None if self.boosters.get(key) is None else \
                forest.forest_of(self.boosters[key])
            if made is not None:
                made.predict(np.zeros((1, made.n_features)), 1, threads=1)

    def raw(self, frame: pl.DataFrame, key: str = "late") -> np.ndarray:
        """Raw output (log-odds for binary targets) of one target."""
        booster = self.boosters[key]
        X = self.matrix(frame)
        if booster is None:
            return np.full(X.shape[0], self.constants[key])
        return booster.predict(X, raw_score=True,
                               num_threads=self._threads(booster, X.shape[0]))

"""Figures logged with every training run: a calibration plot and a SHAP summary plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from paycadence.models import RiskModels  # noqa: E402

BINS = 10
TOP = 15
SAMPLE = 2000


def reliability(y: np.ndarray, p: np.ndarray) -> tuple[list[float], list[float], list[int]]:
    """Per tenth of the forecast: mean forecast, observed share and count (empty tenths left
    out)."""
    idx = np.minimum((p * BINS).astype(int), BINS - 1)
    xs, ys, ns = [], [], []
    for b in range(BINS):
        mask = idx == b
        if mask.any():
            xs.append(float(p[mask].mean()))
            ys.append(float(y[mask].mean()))
            ns.append(int(mask.sum()))
    return xs, ys, ns


def reliability_table(model: pl.DataFrame, naive: pl.DataFrame) -> pl.DataFrame:
    """The points of :func:`calibration` as rows (``forecast``: p_late or p_unpaid_90d;
    ``source``: model or naive reference): what ``dvc plots`` draws."""
    rows = []
    for label, col in (("y_late", "p_late"), ("y_unpaid_90d", "p_unpaid_90d")):
        for frame, source in ((model, "model"), (naive, "naive reference")):
            kept = frame.filter(pl.col(label).is_not_null())
            xs, ys, ns = reliability(kept[label].to_numpy(), kept[col].to_numpy())
            rows += [{"forecast": col, "source": source, "mean_forecast": x, "observed": y,
                      "invoices": n} for x, y, n in zip(xs, ys, ns, strict=True)]
    return pl.DataFrame(rows, schema={"forecast": pl.String, "source": pl.String,
                                      "mean_forecast": pl.Float64, "observed": pl.Float64,
                                      "invoices": pl.Int64})


def calibration(model: pl.DataFrame, naive: pl.DataFrame):
    """Reliability diagrams of ``p_late`` and ``p_unpaid_90d`` on the holdout: observed rate
    against mean forecast per tenth, the model beside the naive reference.

    ``model`` and ``naive`` are :func:`paycadence.training.evaluation.predictions` frames.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, (label, col, title) in zip(axes, (("y_late", "p_late", "p_late"),
                                              ("y_unpaid_90d", "p_unpaid_90d", "p_unpaid_90d")),
                                       strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
        for frame, name, style in ((model, "model", "o-"), (naive, "naive reference", "s:")):
            rows = frame.filter(pl.col(label).is_not_null())
            xs, ys, _ = reliability(rows[label].to_numpy(), rows[col].to_numpy())
            ax.plot(xs, ys, style, label=name)
        ax.set(title=f"{title}: observed vs forecast (holdout)", xlabel="mean forecast",
               ylabel="observed share", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def close(fig) -> None:
    """Free a figure once it is saved (pyplot keeps every open figure alive)."""
    plt.close(fig)


def shap_summary(models: RiskModels, holdout: pl.DataFrame, *, seed: int = 0):
    """SHAP summary of ``p_late`` on (a sample of) the holdout: per feature, each invoice's
    contribution to the log-odds, coloured by the feature's value (low blue, high red),
    features ordered by mean |contribution|."""
    frame = holdout if holdout.height <= SAMPLE else holdout.sample(SAMPLE, seed=seed)
    values, _ = models.contributions(frame)
    X = models.matrix(frame)
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:TOP][::-1]
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(order) + 1.5))
    for row, j in enumerate(order):
        x = X[:, j]
        finite = np.isfinite(x)
        lo, hi = (np.nanpercentile(x, 5), np.nanpercentile(x, 95)) if finite.any() else (0, 1)
        colour = np.where(finite, np.clip((x - lo) / ((hi - lo) or 1.0), 0, 1), 0.5)
        ax.scatter(values[:, j], row + rng.uniform(-0.3, 0.3, len(x)), c=colour, cmap="coolwarm",
                   s=6, alpha=0.6, linewidths=0)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(order)), [models.features[j] for j in order])
    ax.set(xlabel="SHAP value (contribution to the log-odds of paying late)",
           title="What drives p_late (holdout sample; colour: feature value, low → high)")
    fig.tight_layout()
    return fig

"""Stage 4, training: snapshots → LightGBM forecasts → holdout evaluation → MLflow registry."""

from paycadence.training.train import MODEL_NAME, TrainResult, cut_tables, evaluate, fit, train

__all__ = ["MODEL_NAME", "TrainResult", "cut_tables", "evaluate", "fit", "train"]

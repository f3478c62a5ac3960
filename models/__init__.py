"""Stage 3, models: LightGBM forecasts per open invoice and the policy that acts on them."""

from paycadence.models.estimators import LateRiskModel
from paycadence.models.files import ModelFilesError, NonFiniteForecastError
from paycadence.models.policy import Choice, decide
from paycadence.models.recommend import FALLBACK_VERSION, naive_forecast, recommend
from paycadence.models.risk import TARGETS, Forecast, RiskModels

__all__ = [
    "FALLBACK_VERSION",
    "TARGETS",
    "Choice",
    "Forecast",
    "LateRiskModel",
    "ModelFilesError",
    "NonFiniteForecastError",
    "RiskModels",
    "decide",
    "naive_forecast",
    "recommend",
]

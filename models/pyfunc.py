"""MLflow "model from code" for the risk forecasts: no pickle in the registry.

MLflow copies this file into the logged model and runs it when the model is loaded, so it ends
by registering its model object with :func:`mlflow.models.set_model` (MLflow's own convention);
nothing else in paycadence imports it. Input: a frame with the model's feature columns. Output:
``p_late``, ``p_open_7d``, ``expected_days_late`` (days) and ``p_unpaid_90d``.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from paycadence.models.risk import RiskModels


class RiskPyfunc(PythonModel):
    """Serves :class:`RiskModels` through the pyfunc interface (``mlflow models serve``)."""

    def load_context(self, context):
        self.models = RiskModels.load(context.artifacts["risk"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        X = model_input[list(self.models.features)].to_numpy(dtype=np.float64)
        f = self.models.predict_matrix(X)
        return pd.DataFrame({"p_late": f.p_late, "p_open_7d": f.p_open_7d,
                             "expected_days_late": f.expected_days_late,
                             "p_unpaid_90d": f.p_unpaid_90d})


mlflow.models.set_model(RiskPyfunc())

"""The demo: simulate a company, ingest it, train, recommend, and say where everything went."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from paycadence.config import Params, Policy
from paycadence.data.ingest import ingest
from paycadence.data.simulate import simulate, write_simulation
from paycadence.serving.batch import recommend_batch
from paycadence.training import MODEL_NAME, TrainResult, train

logger = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """Everything the demo produced, for the CLI to summarise."""

    out_dir: Path
    as_of: dt.date
    train: TrainResult
    recommendations: list[dict]
    paths: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def actions(self) -> Counter:
        return Counter(r["action"] for r in self.recommendations)


def run_demo(out_dir: str | Path, *, params: Params, policy: Policy, debtors: int,
             seed: int, days: int, progress=None) -> DemoResult:
    """Run simulate → ingest → train → recommend under ``out_dir``.

    ``progress`` is an optional callable taking a one-line status message.
    """
    say = progress or (lambda msg: None)
    out_dir = Path(out_dir)
    raw, clean = out_dir / "data", out_dir / "clean"
    seconds = {}
    t = time.perf_counter()
    say(f"simulating {debtors} debtors over {days} days")
    sim = simulate(debtors, days=days, seed=seed, start=params.simulate.start, policy=policy)
    write_simulation(sim, raw)
    seconds["simulate"] = time.perf_counter() - t
    t = time.perf_counter()
    say("ingesting and validating the tables")
    ingest(raw, clean)
    seconds["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    say("training the forecasts (MLflow run)")
    checked = ingest(raw)
    as_of = checked.tables.last_date + dt.timedelta(days=1)
    trained = train(checked.tables, params=params, data_dir=str(clean))
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    say(f"recommending as of {as_of}")
    recs_path = out_dir / "recommendations.csv"
    batch = recommend_batch(raw, as_of=as_of, out=recs_path, policy=policy,
                            model_name=MODEL_NAME, alias="champion")
    seconds["recommend"] = time.perf_counter() - t
    out_dir = out_dir.resolve()
    raw, clean = out_dir / "data", out_dir / "clean"
    paths = {"simulated data": raw, "validated tables": clean,
             "quarantine": clean / "quarantine.csv",
             "recommendations": recs_path, "MLflow store": Path.cwd() / "mlflow.db"}
    return DemoResult(out_dir, as_of, trained, batch.recommendations, paths, seconds)

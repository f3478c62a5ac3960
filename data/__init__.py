"""Stage 1, data: the contract tables, ingest with quarantine, and the receivables simulator."""

from paycadence.data.ingest import IngestResult, ingest, summary_rows, validate_rows
from paycadence.data.sim_engine import PolicyError
from paycadence.data.sim_policy import (
    DebtorContext,
    Decision,
    DecisionPolicy,
    ScheduleLoggingPolicy,
)
from paycadence.data.simulate import SimulationResult, simulate, write_simulation
from paycadence.data.tables import (
    COLUMNS,
    REQUIRED,
    TABLE_NAMES,
    Tables,
    conform,
    known_as_of,
    read_clean,
    settlements,
    write_tables,
)

__all__ = [
    "Decision",
    "DebtorContext",
    "DecisionPolicy",
    "ScheduleLoggingPolicy",
    "PolicyError",
    "SimulationResult",
    "simulate",
    "write_simulation",
    "IngestResult",
    "ingest",
    "summary_rows",
    "validate_rows",
    "COLUMNS",
    "REQUIRED",
    "TABLE_NAMES",
    "Tables",
    "conform",
    "known_as_of",
    "read_clean",
    "settlements",
    "write_tables",
]

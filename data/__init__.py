"""Stage 1, data: the contract tables, ingest with quarantine, and the receivables simulator."""

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

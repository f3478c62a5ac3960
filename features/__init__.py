"""Stage 2, features: point-in-time features of open invoices and debtors, labels, guard states."""

from paycadence.features.pit import FEATURES, invoice_features
from paycadence.features.snapshots import (
    STILL_LATE_DAYS,
    UNPAID_DAYS,
    build_snapshots,
    label,
    snapshot_dates,
)
from paycadence.features.state import contact_days, debtor_states
from paycadence.features.texts import TEMPLATES, describe

__all__ = [
    "FEATURES",
    "STILL_LATE_DAYS",
    "TEMPLATES",
    "UNPAID_DAYS",
    "build_snapshots",
    "contact_days",
    "debtor_states",
    "describe",
    "invoice_features",
    "label",
    "snapshot_dates",
]

"""The one set of value bounds that ingest, ``/feedback`` and ``/recommend`` all enforce.

An amount or a date outside them is a typo or an attack, never a real invoice: kept, it would
turn into an infinity somewhere downstream (days late of a due date in the year 9999, a cash
forecast of 1e308 × a probability). Ingest quarantines such a row with the reason, the HTTP API
answers 422 naming the field.
"""

from __future__ import annotations

import datetime as dt

#: Amounts (currency) must be above 0 and below this.
MAX_AMOUNT = 1e12
#: Dates (issue, due, payment, action, dispute, hold) from this day ...
MIN_DAY = dt.date(1970, 1, 1)
#: ... to this day, both included.
MAX_DAY = dt.date(2200, 12, 31)

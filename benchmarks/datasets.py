"""The public receivables data sets the real-data benchmark runs on: where each file comes from,
its pinned sha256, and how its rows become the contract's tables (CONTRACT.md §1).

None of them is committed. ``fetch`` downloads a file from its pinned commit into a cache
directory outside the repository (``~/.cache/paycadence/data`` by default) and keeps it only
when its sha256 is the pinned one; every load checks the sha256 again, so a file copied into
the cache by hand is held to the same rule. docs/models.md ("Real data") describes each
mapping.

- ``ibm-ar``: the IBM Watson Analytics accounts-receivable sample (2,466 invoices of 100
  customers, 2012–2013; very likely simulated: ``../shared/data/ibm-ar/PROVENANCE.md``),
  read through the shipped ``ibm-ar`` mapping; ``../shared/data/ibm-ar`` is used when present.
- ``uci-credit-card``: the UCI "default of credit card clients" data (Yeh & Lien 2009: 30,000
  Taiwanese card holders, April–September 2005), each monthly statement an invoice
  (:func:`card_statements`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from paycadence.data import Tables, ingest
from paycadence.data.mapping import load_mapping
from paycadence.errors import InputError

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_CACHE = Path("~/.cache/paycadence/data").expanduser()


class ChecksumError(InputError):
    """A data file is not the published one its sha256 pins."""


@dataclass(frozen=True)
class DataSet:
    """A public data set: its ``file`` (as published at ``url``, pinned by ``sha256``), its
    ``licence`` and origin, the ``cuts`` of the benchmark's time split (each scores the invoices
    issued from it to the next one, the last to the end of the data) and ``load``, which reads
    the directory holding the file into contract tables."""

    name: str
    file: str
    url: str
    sha256: str
    licence: str
    cuts: tuple[dt.date, ...]
    load: Callable[[Path], Tables]
    shared: str | None = None  # its folder under ../shared/data, when shipped there
    #: False when its settlement days are made up (a month's resolution): no days-late figure
    daily: bool = True


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str) -> Path:
    """``path`` when its sha256 is ``sha256``.

    Raises
    ------
    ChecksumError
        It differs: the file is not the published one (a different copy, an edit, a broken
        download).
    """
    got = sha256_of(path)
    if got != sha256:
        raise ChecksumError(
            f"{path}: sha256 {got} is not the pinned {sha256}: not the published file; "
            "delete it and run the benchmark with --fetch")
    return path


def located(data: DataSet, cache: Path) -> Path | None:
    """The directory holding ``data.file`` (``../shared/data`` first, then the cache), its
    sha256 checked; None when neither has it."""
    places = [SHARED_DATA / data.shared] if data.shared else []
    for folder in [*places, cache / data.name]:
        if (folder / data.file).is_file():
            verify(folder / data.file, data.sha256)
            return folder
    return None


def fetch(data: DataSet, cache: Path) -> Path:
    """Download ``data.file`` from its pinned URL into ``cache/<name>/`` unless a verified
    copy is there; the download is kept only when its sha256 is the pinned one.

    Raises
    ------
    ChecksumError
        The downloaded bytes are not the published file (nothing is kept).
    """
    folder = cache / data.name
    target = folder / data.file
    if target.is_file():
        return verify(target, data.sha256).parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as part:
        partial = Path(part.name)
        with urllib.request.urlopen(data.url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                part.write(block)
    try:
        verify(partial, data.sha256)
    except ChecksumError:
        partial.unlink()
        raise ChecksumError(f"{data.url}: the download's sha256 is not the pinned "
                            f"{data.sha256}: refused, nothing kept") from None
    partial.replace(target)
    return folder


def ibm_ar(folder: Path) -> Tables:
    """The IBM sample through the shipped ``ibm-ar`` mapping (one invoice per row, one full
    payment on its settlement date)."""
    return ingest(folder, mapping=load_mapping("ibm-ar")).tables


#: UCI card data: statements of April (month 1) to September 2005 (month 6).
CARD_MONTHS = 6
#: Days from a statement (the month's last day) to its payment due date.
CARD_DUE_DAYS = 20


def _month_end(month: int) -> dt.date:
    """The last day of card month ``month`` (1 = April 2005)."""
    first_next = dt.date(2005, 4 + month, 1) if month < 9 else dt.date(2006, month - 8, 1)
    return first_next - dt.timedelta(days=1)


def card_statements(raw: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The contract tables of the UCI card data (columns ``ID``, ``X1``…``X23``, ``Y``).

    Each client is a debtor; each monthly statement with a positive bill (``X17`` April …
    ``X12`` September) is an invoice issued on the month's last day, due
    :data:`CARD_DUE_DAYS` later, in TWD. The repayment status of the next month (``X10`` May
    … ``X6`` September; ``Y``, default in October, for September's statement) says whether it
    was paid by its due date: a status of one month's delay or more is late. It is settled
    (one payment of its whole amount) on the due date of the first month from the next one
    whose status shows no delay (−2, −1 or 0: no use, paid in full, minimum paid); never, when
    no later month does. The payment amounts (``X18``…``X23``) are not used.
    """
    status = {month: raw[f"X{12 - month}"] for month in range(2, CARD_MONTHS + 1)}
    status[CARD_MONTHS + 1] = raw["Y"]  # default (1) or not in October
    due = {m: _month_end(m - 1) + dt.timedelta(days=CARD_DUE_DAYS)
           for m in range(2, CARD_MONTHS + 2)}
    debtors = pl.DataFrame({"debtor_id": raw["ID"].cast(pl.String), "country": "TW",
                            "segment": "b2c"})
    invoices, payments = [], []
    for month in range(1, CARD_MONTHS + 1):
        bill = raw[f"X{18 - month}"].cast(pl.Float64)
        settled = pl.lit(None, dtype=pl.Date)
        for later in range(CARD_MONTHS + 1, month, -1):  # the first month that is current wins
            settled = pl.when(pl.col(f"s{later}") <= 0).then(pl.lit(due[later])).otherwise(
                settled)
        rows = pl.DataFrame({"debtor_id": raw["ID"].cast(pl.String), "amount": bill,
                             **{f"s{m}": status[m] for m in range(month + 1, CARD_MONTHS + 2)}}
                            ).filter(pl.col("amount") > 0).with_columns(
            invoice_id=pl.col("debtor_id") + f"-2005-{month + 3:02d}",
            issue_date=pl.lit(_month_end(month)), due_date=pl.lit(due[month + 1]),
            currency=pl.lit("TWD"), paid_on=settled)
        invoices.append(rows.select("invoice_id", "debtor_id", "issue_date", "due_date",
                                    "amount", "currency"))
        payments.append(rows.filter(pl.col("paid_on").is_not_null()).select(
            "invoice_id", "paid_on", "amount"))
    return {"debtors": debtors, "invoices": pl.concat(invoices), "payments": pl.concat(payments)}


def uci_credit_card(folder: Path) -> Tables:
    """The UCI card data as contract tables (:func:`card_statements`), through ingest."""
    raw = pl.read_csv(folder / UCI.file, infer_schema_length=None)
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in card_statements(raw).items():
            frame.write_csv(Path(tmp) / f"{name}.csv")
        return ingest(tmp).tables


IBM = DataSet(
    name="ibm-ar", file="WA_Fn-UseC_-Accounts-Receivable.csv",
    url="https://raw.githubusercontent.com/pthiagu2/DataMining/"
        "c62bd3cd9e07218e15cf18ee6284c876cf082de8/WA_Fn-UseC_-Accounts-Receivable.csv",
    sha256="f5d488eaa4c1cc843b478b6f1068c553c5394aab4b64d587e4b9ad811d845c19",
    licence="IBM Watson Analytics sample data; no licence stated in any copy (very likely "
            "simulated: ../shared/data/ibm-ar/PROVENANCE.md)",
    cuts=(dt.date(2013, 1, 1), dt.date(2013, 5, 1), dt.date(2013, 9, 1)),
    load=ibm_ar, shared="ibm-ar")

UCI = DataSet(
    name="uci-credit-card", file="UCI_Credit_Card.csv",
    url="https://raw.githubusercontent.com/fju155447/uci/"
        "84670e783ab9fd2459b7096d82965f28dafb66b2/UCI_Credit_Card.csv",
    sha256="023eb2c3ad9efd15e7869616fa50a0143f25223105c7069ba632431530afdb61",
    licence="UCI Machine Learning Repository, 'default of credit card clients' (Yeh & Lien "
            "2009, doi:10.24432/C55S3H), CC BY 4.0 as UCI lists it; this copy keeps the "
            "original X1…X23, Y header",
    cuts=(_month_end(4), _month_end(5), _month_end(6)),
    load=uci_credit_card, daily=False)

DATASETS: dict[str, DataSet] = {d.name: d for d in (IBM, UCI)}

"""Training snapshots and treated rows: building, sampling, saving and loading them, and
splitting them by time (what :func:`paycadence.training.train.train` fits and scores on)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from paycadence.config import Params
from paycadence.data import TABLE_NAMES, Tables, known_as_of
from paycadence.errors import InputError
from paycadence.features import FEATURES, build_snapshots
from paycadence.features import label as label_snapshots
from paycadence.features.pit import features_at
from paycadence.features.snapshots import (
    GOLDEN,
    STRATA,
    mix64,
    sampling_shares,
    stratum_rows,
)
from paycadence.models.policy import STRENGTH
from paycadence.training.bounded import ScannedTables, fingerprint_of, frame_parts

logger = logging.getLogger(__name__)

LABELS = {"late": "y_late", "days": "y_days_late", "unpaid": "y_unpaid_90d"}


def cut_tables(tables: Tables | ScannedTables, as_of: dt.date) -> Tables | ScannedTables:
    """Only what was known on the morning of ``as_of`` (train as if it were that day)."""
    if isinstance(tables, ScannedTables):
        return tables.cut(as_of)
    out = {"debtors": tables.debtors}
    for name in TABLE_NAMES[1:]:
        out[name] = known_as_of(getattr(tables, name), as_of, table=name)
    return Tables(**out)


def fingerprint(tables: Tables | ScannedTables) -> str:
    """A short, order-independent digest of the tables' contract columns (of scanned tables:
    summed batch by batch, the same digest in bounded memory)."""
    return fingerprint_of(fingerprint_parts(tables))


def fingerprint_parts(tables: Tables | ScannedTables) -> dict[str, tuple[int, int]]:
    """Per table, its rows and the sum of its rows' hashes (modulo 2**64): parts of a book
    (hash buckets of debtors, batches of rows) add up to the whole book's
    (:func:`paycadence.training.bounded.fingerprint_of`)."""
    if isinstance(tables, ScannedTables):
        return tables.fingerprint_parts()
    return {name: frame_parts(name, frame) for name, frame in tables.items()}


def split_day(dates: list[dt.date], *, holdout_share: float) -> dt.date:
    """The first held-out day of :func:`time_split`, from the snapshot days (ascending, each
    once): the last ``holdout_share`` of them are held out."""
    if len(dates) < 4:
        raise InputError(
            f"too few snapshot days to train: {len(dates)}, at least 4 are needed (snapshots "
            "built for other settings? rebuild them with paycadence features)"
        )
    return dates[min(int(len(dates) * (1 - holdout_share)), len(dates) - 1)]


def embargo_of(dates: list[dt.date], split: dt.date, embargo_days: int) -> int:
    """Days of embargo before the split day ``split`` of the snapshot days ``dates``
    (ascending): ``embargo_days``, but at most half the days from the first snapshot day to
    the split, so that a short history keeps training days (docs/models.md, "Short
    histories")."""
    return min(embargo_days, (split - dates[0]).days // 2)


def time_split(snaps: pl.DataFrame, *, holdout_share: float, embargo_days: int):
    """Split snapshots by date: the last ``holdout_share`` of dates held out, an embargo before
    (:func:`embargo_of`)."""
    dates = snaps["as_of"].unique().sort().to_list()
    split = split_day(dates, holdout_share=holdout_share)
    embargo = embargo_of(dates, split, embargo_days)
    train = snaps.filter(pl.col("as_of") < split - dt.timedelta(days=embargo))
    holdout = snaps.filter(pl.col("as_of") >= split)
    if train.height == 0:
        train = snaps.filter(pl.col("as_of") < split)
    return train, holdout, split


def snapshots(tables: Tables, params: Params, strata: dict | None = None
              ) -> tuple[pl.DataFrame, dt.date]:
    """The labelled training snapshots of ``params`` and the data's last day.

    The snapshot days are those of the history's plan
    (:func:`paycadence.training.history.history_plan`: a short history gets a shorter
    warm-up; one below ``train.required_history_days`` is refused, saying how many more days
    it needs). Above ``features.max_snapshot_rows`` rows a stratified sample of (debtor, day)
    pairs is kept (:func:`sampling_plan`); ``strata``, when given, receives the plan.
    """
    from paycadence.training.history import history_plan  # it reads this module's split

    plan = history_plan(tables, params)
    last, dates = plan.last, plan.dates()
    plan = sampling_plan(stratum_rows(tables, dates, horizon_days=params.train.horizon_days),
                         params)
    if strata is not None:
        strata.update(plan)
    snaps = build_snapshots(tables, dates, horizon_days=params.train.horizon_days, data_end=last,
                            seed=params.features.snapshot_seed,
                            shares={k: v["share"] for k, v in plan.items()})
    if snaps.height == 0:
        raise InputError("no open invoice on any snapshot date: nothing to learn from")
    return snaps, last


def sampling_plan(rows: dict[str, int], params: Params) -> dict[str, dict]:
    """Rows and kept share of each snapshot stratum (``current``, ``overdue``: see
    :func:`paycadence.features.snapshots.sampling_shares`) for the settings of ``params``."""
    shares = sampling_shares(rows, max_rows=params.features.max_snapshot_rows,
                             overdue_oversampling=params.features.overdue_oversampling)
    return {k: {"rows": int(rows.get(k, 0)), "share": shares[k]} for k in STRATA}


def kept_share(plan: dict[str, dict]) -> float:
    """The share of all snapshot rows a sampling plan keeps, in expectation."""
    total = sum(v["rows"] for v in plan.values())
    shares = {v["share"] for v in plan.values()}
    if len(shares) == 1 or total == 0:
        return float(next(iter(shares)))
    return float(sum(v["rows"] * v["share"] for v in plan.values()) / total)


#: What the saved snapshots were built from; training refuses them for other data or settings.
SNAPSHOT_FILE, SNAPSHOT_META = "snapshots.parquet", "snapshots.json"
#: The response model's treated rows, saved beside the snapshots (see :func:`treated_plan`).
TREATED_FILE = "treated.parquet"
#: The order of saved snapshots and treated rows (both engines write it).
ROW_ORDER = ("as_of", "debtor_id", "due_date", "invoice_id")


def snapshot_key(digest: str, params: Params, as_of: dt.date | None) -> dict:
    """What snapshots are built from: the data's :func:`fingerprint`, the day and the
    settings (``train --features`` refuses snapshots whose key differs from its own)."""
    return {"data_fingerprint": digest,
            "as_of": as_of.isoformat() if as_of else None,
            "features": params.features.model_dump(),
            "horizon_days": params.train.horizon_days}


def save_snapshots(tables: Tables, params: Params, out: str | Path,
                   as_of: dt.date | None = None) -> tuple[Path, int]:
    """Build the labelled training snapshots (the features stage of ``dvc.yaml``) into
    ``out``: ``snapshots.parquet``, the response model's treated rows before the split
    ``train`` will make (``treated.parquet``, :func:`treated_plan`) and ``snapshots.json``
    (what they were built from). Returns the directory and the number of snapshot rows."""
    if as_of is not None:
        tables = cut_tables(tables, as_of)
    plan: dict = {}
    snaps, last = snapshots(tables, params, plan)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / SNAPSHOT_FILE
    clear_output(data_path)  # an earlier --engine spark build is a folder
    snaps.write_parquet(data_path)
    clear_output(out / TREATED_FILE)
    before = treated_before(snaps["as_of"].unique().sort().to_list(), params)
    treated = None
    if before is not None:
        treated = treated_plan(action_pairs(tables), before=before, data_end=last,
                               params=params)
        rows = treated_rows(tables, before=before, horizon_days=params.train.horizon_days,
                            data_end=last, share=treated["share"],
                            seed=params.features.snapshot_seed)
        treated["rows"] = rows.height
        if rows.height:
            rows.sort(ROW_ORDER).write_parquet(out / TREATED_FILE)
    write_snapshot_meta(out, snapshot_key(fingerprint(tables), params, as_of), snaps.height,
                        plan, treated)
    return out, snaps.height


def clear_output(path: Path) -> None:
    """Remove an earlier output file or folder of part files at ``path``."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_snapshot_meta(out: Path, key: dict, rows: int, plan: dict[str, dict],
                        treated: dict | None = None) -> Path:
    """``snapshots.json``: what the snapshots were built from (``key``), their rows, the
    sampling plan (rows and kept share per stratum, and the share kept overall) and what
    ``treated.parquet`` holds (:func:`treated_plan` and its ``rows``; None: no file)."""
    meta = {**key, "rows": rows, "sampled_share": kept_share(plan), "strata": plan,
            "treated": treated}
    path = out / SNAPSHOT_META
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def load_snapshots(folder: str | Path, tables: Tables | ScannedTables, params: Params,
                   as_of: dt.date | None = None) -> pl.DataFrame:
    """The snapshots :func:`save_snapshots` (one ``snapshots.parquet`` file) or
    ``features --engine spark`` (a ``snapshots.parquet/`` folder of part files, read in name
    order) wrote, after checking they were built from these tables (as known on ``as_of``:
    already cut with :func:`cut_tables`) with these settings (a clear :class:`InputError`
    otherwise)."""
    folder = Path(folder)
    meta_path, data_path = folder / SNAPSHOT_META, folder / SNAPSHOT_FILE
    if not meta_path.is_file() or not data_path.exists():
        raise InputError(f"{folder}: no {SNAPSHOT_FILE} + {SNAPSHOT_META} "
                         "(build them with: paycadence features --data DIR --out DIR)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_path}: unreadable ({exc})") from None
    want = snapshot_key(fingerprint(tables), params, as_of)
    differ = [k for k, v in want.items() if meta.get(k) != v]
    if differ:
        raise InputError(f"{folder}: snapshots were built from other "
                         f"{', '.join(differ)} than this training run; rebuild them with "
                         "paycadence features")
    try:
        # a folder of part files (--engine spark) is read in name order: sorted as one file is
        snaps = pl.read_parquet(sorted(data_path.glob("*.parquet")) if data_path.is_dir()
                                else data_path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{data_path}: unreadable ({exc})") from None
    missing = [c for c in (*FEATURES, *LABELS.values(), "as_of") if c not in snaps.columns]
    if missing or snaps.height != meta.get("rows"):
        raise InputError(f"{data_path}: not the snapshots {SNAPSHOT_META} describes "
                         f"(missing columns: {', '.join(missing) or 'none'})")
    return snaps


def load_treated(folder: str | Path, *, before: dt.date, data_end: dt.date
                 ) -> pl.DataFrame | None:
    """The treated rows saved beside snapshots that :func:`load_snapshots` has accepted
    (``treated.parquet``: a file, or a folder of part files read in name order), when they
    are those of days before ``before`` labelled to ``data_end``; None when there are none
    or they were built for another split (``train.holdout_share`` or ``embargo_days``
    changed since): then ``train`` builds them itself."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / SNAPSHOT_META).read_text(encoding="utf-8")).get("treated")
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder / SNAPSHOT_META}: unreadable ({exc})") from None
    if not meta or meta.get("before") != before.isoformat() or \
            meta.get("data_end") != data_end.isoformat():
        logger.warning("%s: no treated rows before %s saved (%s): building them", folder, before,
                    f"saved before {meta.get('before')}" if meta else "none")
        return None
    if meta["rows"] == 0:
        return pl.DataFrame()
    path = folder / TREATED_FILE
    try:
        rows = pl.read_parquet(sorted(path.glob("*.parquet")) if path.is_dir() else path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    missing = [c for c in (*FEATURES, "action", "propensity", "sampled_share")
               if c not in rows.columns]
    if missing or rows.height != meta["rows"]:
        raise InputError(f"{path}: not the treated rows {SNAPSHOT_META} describes "
                         f"(missing columns: {', '.join(missing) or 'none'}); rebuild them "
                         "with paycadence features")
    return rows


def acted_keys(tables: Tables | ScannedTables, before: dt.date) -> pl.DataFrame:
    """``invoice_id`` and ``as_of`` of every logged action before ``before``: the snapshot
    rows that were not waited, when the treated rows are a sample (a lazy query of two
    columns of the actions table: scanned tables are not read whole)."""
    return tables.actions.lazy().filter(pl.col("sent_on") < before).select(
        "invoice_id", as_of="sent_on").unique().collect(engine="streaming")


def treated_rows(tables: Tables, *, before: dt.date, horizon_days: int,
                 data_end: dt.date, share: float = 1.0, seed: int = 0) -> pl.DataFrame:
    """Labelled feature rows of every (invoice, day) on which a logged action named the
    invoice, for days before ``before``: the treated rows of the response model (the day's
    action, its logged propensity, the features as of that morning). Two actions on one
    invoice on one day count as the stronger one (:data:`paycadence.models.policy.STRENGTH`),
    whatever the order of the rows, so every engine and bucketing keeps the same one.

    With ``share`` below 1, an (invoice, day) pair is kept when a hash of its invoice id and
    day (with ``seed``) falls below ``share``: the same draw whatever else is in the tables
    (a hash bucket of debtors or the whole book). Every row carries ``sampled_share``.
    """
    acts = tables.actions.filter(pl.col("sent_on") < before).select(
        "invoice_id", as_of="sent_on", action="channel",
        propensity=pl.col("propensity") if "propensity" in tables.actions.columns
        else pl.lit(None, dtype=pl.Float64),
    ).with_columns(strength=pl.col("action").replace_strict(STRENGTH, default=0)).sort(
        "invoice_id", "as_of", "strength", "action", descending=[False, False, True, False]
    ).unique(["invoice_id", "as_of"], keep="first", maintain_order=True).drop("strength")
    if share < 1.0 and acts.height:
        acts = acts.filter(pl.Series(_pair_draw(acts, seed) < np.uint64(share * 2.0**64)))
    if acts.height == 0:
        return pl.DataFrame()
    owners = tables.invoices.select("invoice_id", "debtor_id")
    points = acts.join(owners, on="invoice_id").select("debtor_id", "as_of").unique()
    frame = features_at(tables, points, max_days_past_due=horizon_days).collect()
    frame = frame.join(acts, on=["invoice_id", "as_of"], how="inner")
    if frame.height == 0:
        return pl.DataFrame()
    return label_snapshots(frame, tables, data_end=data_end, horizon_days=horizon_days
                           ).with_columns(sampled_share=pl.lit(share, dtype=pl.Float64))


def _pair_draw(acts: pl.DataFrame, seed: int) -> np.ndarray:
    """A uniform uint64 per (``invoice_id``, ``as_of``) row, fixed by ``seed``."""
    ordinal = acts["as_of"].to_physical().to_numpy().astype(np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = acts["invoice_id"].hash(seed=seed).to_numpy() ^ (ordinal * np.uint64(GOLDEN))
    return mix64(key)


def action_pairs(tables: Tables) -> dict[str, int]:
    """Per day (ISO), the logged (invoice, day) pairs of known invoices: what
    :func:`treated_rows` starts from. Hash buckets of debtors add up to the whole book's."""
    pairs = tables.actions.select("invoice_id", "sent_on").drop_nulls().unique().join(
        tables.invoices.select("invoice_id"), on="invoice_id", how="semi")
    return {day.isoformat(): int(n) for day, n in pairs.group_by("sent_on").len().iter_rows()}


def treated_plan(pairs: dict[str, int], *, before: dt.date, data_end: dt.date,
                 params: Params) -> dict:
    """What ``treated.parquet`` holds: the treated rows of days before ``before`` (labels to
    ``data_end``), the logged pairs they come from (``actions``) and the share kept: all of
    them up to ``features.max_snapshot_rows`` pairs, above it that many in expectation."""
    n = sum(v for day, v in pairs.items() if day < before.isoformat())
    cap = params.features.max_snapshot_rows
    return {"before": before.isoformat(), "data_end": data_end.isoformat(), "actions": n,
            "share": 1.0 if n <= cap else cap / n}


def treated_before(dates: list[dt.date], params: Params) -> dt.date | None:
    """The day ``train`` takes treated rows before: :func:`time_split`'s first held-out day
    minus its embargo (:func:`embargo_of`), from the snapshot days (ascending, each once);
    None when they are too few to train on."""
    if len(dates) < 4:
        return None
    split = split_day(dates, holdout_share=params.train.holdout_share)
    return split - dt.timedelta(days=embargo_of(dates, split, params.train.embargo_days))

"""The service's working state: champion models, stored history, and request → tables.

:class:`Engine` is built once per process (by the app's lifespan or the batch command). It loads
the champion by alias and falls back to the rule-based forecasts when that fails, so a missing
or broken model never stops recommendations.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from paycadence.books import BookChoice
from paycadence.config import Policy
from paycadence.data import COLUMNS, Tables, ingest
from paycadence.models import (
    FALLBACK_VERSION,
    ModelFilesError,
    NonFiniteForecastError,
    RiskModels,
    recommend,
)
from paycadence.redact import redact
from paycadence.serving.schemas import DebtorIn
from paycadence.serving.snapshot import BookDays, touched_debtors
from paycadence.serving.store import (
    KEYS,
    STORE_KEYS,
    FeedbackStore,
    StoreUnavailableError,
    payment_keys,
)
from paycadence.training import tracking

logger = logging.getLogger(__name__)


@dataclass
class Engine:
    """Models, policy and stored tables, shared by all requests of one process."""

    policy: Policy
    models: RiskModels | None = None
    version: str = FALLBACK_VERSION
    detail: str = "no model loaded"
    stored: Tables = field(default_factory=lambda: Tables.from_frames())
    trained_on: str | None = None
    #: the loaded version's tags: its book and the data it learnt from (paycadence.books)
    tags: dict[str, str] = field(default_factory=dict)
    #: why the service is degraded though a model is loaded (it failed at predict time)
    failing: str | None = None
    #: the reason code of ``failing`` (``model_output_not_finite`` or ``model_failing``)
    failing_reason: str | None = None
    #: the reason code of the last load when it failed (``no_model``, ``model_invalid``,
    #: ``model_output_not_finite``; ``reload_failed`` when the previous model still serves)
    load_reason: str | None = None
    #: the registry could not be asked at the last look (the loaded model still serves)
    registry_down: bool = False
    #: a version refused for its files or outputs: not tried again until the alias moves
    refused: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _known: tuple[Tables, frozenset] | None = field(default=None, repr=False)
    _days: BookDays = field(default_factory=BookDays, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _feed: _Feed | None = field(default=None, repr=False)

    @property
    def degraded(self) -> bool:
        """No model loaded, the loaded one failed at predict time since it was loaded, or
        the version the alias points to was refused (the previous one still serves)."""
        return self.models is None or self.failing is not None or self.load_reason is not None

    @property
    def reason(self) -> str:
        """A short machine-readable code for ``/health`` (never a path, a URI or exception
        text): ``ok``, ``no_model``, ``model_invalid``, ``model_output_not_finite``,
        ``reload_failed``, ``model_failing`` or ``registry_unreachable`` (the loaded model
        still serves; not degraded)."""
        if self.failing is not None:
            return self.failing_reason or "model_failing"
        if self.load_reason is not None:
            return self.load_reason
        if self.models is None:
            return "no_model"
        return "registry_unreachable" if self.registry_down else "ok"

    def check_book(self, book: BookChoice | None, model_name: str, tables: Tables) -> None:
        """Refuse to decide for ``tables`` (their debtors) with a loaded champion of another
        book (:class:`paycadence.books.BookChoice`); nothing to check on the fallback."""
        if book is None or self.models is None:
            return
        book.check(self.tags, tables.debtors["debtor_id"].to_list(),
                   what=f"the champion {model_name} version {self.version.removeprefix('risk:')}")

    @classmethod
    def load(cls, policy: Policy, *, model_name: str, alias: str,
             data_dir: str | Path | None = None, stored: bool = False) -> Engine:
        """Load ``model_name@alias`` (or fall back) and, with ``stored``, the stored history.

        The history is ``data_dir`` when given, else the data the champion was trained on
        (the run's ``data_dir`` tag); it is validated like ``ingest``.
        """
        engine = cls(policy=policy)
        engine.reload_models(model_name, alias)
        if not stored:
            return engine
        source = data_dir or engine.trained_on
        if source and Path(source).is_dir():
            engine.stored = ingest(source).tables
            logger.info("stored history: %d invoices from %s", engine.stored.invoices.height,
                        source)
        elif source:
            logger.warning("stored history %s not found: only /feedback rows are known", source)
        return engine

    def reload_models(self, model_name: str, alias: str) -> bool:
        """(Re)load the champion; returns whether it now serves.

        Its files are checked before LightGBM reads them (:meth:`RiskModels.load`: the
        checksums recorded at registration, their structure, a parse in a child process) and
        its outputs on the registered input example. When that fails, a model already
        loaded keeps serving (reason ``reload_failed``); otherwise the rule-based fallback
        does. A version refused for its files or outputs is remembered (:attr:`refused`):
        :meth:`refresh` does not try it again until the alias moves.
        """
        from paycadence.errors import ModelNotFoundError, RegistryUnavailableError

        where = f"{model_name}@{alias}"
        version = None
        try:
            path, version = tracking.download_model(model_name, alias)
            models = RiskModels.load(path, checksums=tracking.recorded_checksums(
                model_name, version), probe=tracking.input_example(path))
            models.warm()
            trained_on = tracking.version_data_dir(model_name, version)
            tags = tracking.version_tags(model_name, version)
        except Exception as exc:  # noqa: BLE001 - any failure means: keep what serves
            if isinstance(exc, ModelFilesError | NonFiniteForecastError):
                # the files or the outputs: the same bytes would fail again
                code, why = exc.code, str(exc)  # our own text: names a file, never a path
                self.refused = version
            elif isinstance(exc, ModelNotFoundError):
                code, why = "no_model", f"no version behind {where}"
            elif isinstance(exc, RegistryUnavailableError):
                code, why = "no_model", "the model registry cannot be reached"
            else:
                code = "model_invalid" if version is not None else "no_model"
                why = f"{type(exc).__name__} while loading"
            self._refuse(where, version, code, why)
            return False
        with self._lock:
            self.models, self.version = models, f"risk:{version}"
            self.detail = f"{where} = version {version}"
            self.trained_on, self.tags = trained_on, tags
            self.failing = self.failing_reason = self.load_reason = self.refused = None
            self.registry_down = False
        logger.info("loaded %s version %s", where, version)
        return True

    def _refuse(self, where: str, version: str | None, code: str, why: str) -> None:
        """Record a failed load: keep the model that serves (``reload_failed``) or serve
        the rule-based fallback (``code``); one log line says which and why."""
        named = f"version {version} of {where}" if version is not None else where
        with self._lock:
            if self.models is not None:
                self.load_reason = "reload_failed"
                self.detail = (f"{named} refused ({code}: {why}); still serving "
                               f"{self.version}")
                kept = self.version
            else:
                self.load_reason = code
                self.detail = f"fallback to the rule-based schedule: {named} not loaded " \
                              f"({code}: {why})"
                kept = None
        if kept is not None:
            logger.error("%s refused (%s: %s): still serving %s", named, code, redact(why),
                         kept)
        else:
            logger.warning("model %s not loaded (%s: %s): serving the rule-based fallback",
                           named, code, redact(why))

    def refresh(self, model_name: str, alias: str) -> bool:
        """Reload when ``model_name@alias`` points to another version than the one served
        (or when serving the fallback), unless that version was refused already; returns
        whether it tried. A registry that cannot be reached leaves everything as it is
        (reason ``registry_unreachable`` while a model serves)."""
        try:
            version = tracking.alias_version(tracking.setup(), model_name, alias)
        except Exception as exc:  # noqa: BLE001 - the registry is down: keep what we serve
            if not self.registry_down:
                logger.warning("model registry not reachable (%s): keeping %s",
                               type(exc).__name__, self.version)
            self.registry_down = True
            return False
        if self.registry_down:
            logger.info("model registry reachable again")
            self.registry_down = False
        current = self.version.removeprefix("risk:") if self.models is not None else None
        if version is not None and str(version.version) == current \
                and self.load_reason is not None:  # the alias is back on the version served
            logger.info("%s@%s points at version %s again: serving it", model_name, alias,
                        current)
            with self._lock:
                self.load_reason = self.refused = None
                self.detail = f"{model_name}@{alias} = version {current}"
            return False
        if version is None or str(version.version) in (current, self.refused):
            return False
        logger.info("%s@%s moved to version %s (serving %s): reloading", model_name, alias,
                    version.version, self.version)
        self.reload_models(model_name, alias)
        return True

    def watch(self, model_name: str, alias: str, every_seconds: float) -> threading.Thread:
        """Check the alias every ``every_seconds`` in a daemon thread (until :meth:`close`),
        so that a promotion is served without a restart."""
        def loop():
            while not self._stop.wait(every_seconds):
                self.refresh(model_name, alias)

        thread = threading.Thread(target=loop, name="paycadence-model-watch", daemon=True)
        thread.start()
        return thread

    def close(self, wait: bool = False) -> None:
        """Stop the alias watch and the day passes (``wait``: until a pass under way ends)."""
        self._stop.set()
        self._days.close(wait)

    def follow(self, store: FeedbackStore, every_seconds: float = 0.0) -> None:
        """Add every row of the feedback store now, and from then on, before each call about
        stored debtors, the rows any process (another worker, another instance) stored since
        (:meth:`catch_up`).

        Parameters
        ----------
        store
            The feedback store this process writes to.
        every_seconds
            Look at most this often (seconds); 0 looks before every such call (one indexed
            query when nothing is new).
        """
        tables, seq = store.changes(None)
        self.add_feedback(tables)
        self._feed = _Feed(store, every_seconds, seq)

    def catch_up(self) -> None:
        """Add the feedback rows stored by any process since the last look (see
        :meth:`follow`). A database that cannot be read leaves the history as it is (one
        warning until it can be read again)."""
        feed = self._feed
        if feed is None or (feed.every > 0
                            and time.monotonic() - feed.checked < feed.every):
            return
        # a call waits for a look in progress, then looks itself: a row committed before the
        # call started is then always in its answer
        with feed.lock:
            feed.checked = time.monotonic()
            try:
                got = feed.store.changes(feed.seq)
            except StoreUnavailableError as exc:
                if not feed.failing:
                    logger.warning("feedback rows of other processes not read (%s): "
                                   "answering from what this process holds", exc)
                feed.failing = True
                return
            if feed.failing:
                logger.info("feedback store readable again")
                feed.failing = False
            if got is not None:
                tables, seq = got
                self.add_feedback(tables)
                feed.seq = seq

    def add_feedback(self, tables: Tables) -> None:
        """Make rows just stored durably visible to stored-debtor recommendations.

        Rows whose natural key the stored history already has (e.g. an invoice of the training
        data posted again, or rows this process stored itself read back from the store) are
        not added twice; a dispute that comes with a ``resolved_on`` sets that of the one
        held (a resolution posted later). Payments are told apart by their ``payment_key``
        too (the store's; the held rows' from their order), so that two identical payments
        of one body stay two.
        """
        with self._lock:
            fresh, resolved = {}, None
            for name, frame in tables.items():
                keys = list(STORE_KEYS[name])
                held = getattr(self.stored, name)
                if name == "payments":  # keys of the held rows like the posted ones only
                    same = list(KEYS["payments"])
                    frame = payment_keys(frame)
                    held = payment_keys(
                        held.with_row_index("_at")
                        .join(frame.select(same).unique(), on=same, how="semi", nulls_equal=True)
                        .sort("_at").drop("_at"))
                frame = frame.unique(keys, keep="first", maintain_order=True)
                fresh[name] = frame.join(held.select(keys), on=keys, how="anti",
                                         nulls_equal=True)
                if name == "disputes" and frame.height > fresh[name].height:
                    resolved = _resolutions(frame, held)
            if not any(f.height for f in fresh.values()) and resolved is None:
                return
            changed = Tables(**fresh)
            stored = self.stored
            if resolved is not None:
                stored = replace(stored, disputes=stored.disputes.update(
                    resolved, on=list(KEYS["disputes"])))
                changed = replace(changed, disputes=pl.concat([fresh["disputes"], resolved]))
            self.stored = stored.concat(Tables(**fresh))
            self._days.touch(touched_debtors(changed, self.stored), self.stored)

    def recommend(self, as_of: dt.date, debtors: list[DebtorIn]) -> list[dict]:
        """Recommendations in request order; stateless debtors use only their own history."""
        stateless = [d for d in debtors if d.history is not None]
        stored = [d for d in debtors if d.history is None]
        out: dict[str, dict] = {}
        models, version = self.models, self.version  # one call, one model
        if stored:
            self.catch_up()
            snapshot, known = self._stored_debtors()
            day = self._days.ready(snapshot, as_of, models, lambda: self.stored)
            if day is not None:
                # debtors named by id only: the day's scored rows of the book are theirs
                plain = [d for d in stored if not d.open_invoices and d.debtor_id in known
                         and d.debtor_id not in day.stale]
                taken = {d.debtor_id for d in plain}
                stored = [d for d in stored if d.debtor_id not in taken]
                opted = {d.debtor_id: frozenset(d.opted_out) for d in plain
                         if d.opted_out is not None}
                for rec in self._run(models, version, snapshot, as_of, plain, None, opted,
                                     scored=day.scored):
                    out[rec["debtor_id"]] = rec
        for group, base in ((stateless, None), (stored, self.stored)):
            if not group:
                continue
            tables, open_ids, opted = request_tables(group, base)
            for rec in self._run(models, version, tables, as_of, group, open_ids, opted):
                out[rec["debtor_id"]] = rec
        return [out[d.debtor_id] for d in debtors]

    def _stored_debtors(self) -> tuple[Tables, frozenset]:
        """The current stored snapshot and the ids of its debtors (read again after
        ``/feedback`` replaced it)."""
        known, stored = self._known, self.stored
        if known is None or known[0] is not stored:
            known = (stored, frozenset(stored.debtors["debtor_id"].to_list()))
            self._known = known
        return known

    def _run(self, models, version, tables, as_of, group, open_ids, opted,
             scored=None) -> list[dict]:
        """Recommend for ``group`` with ``models`` (the rule-based fallback when None or when
        they fail); ``scored``: the stored book's day scored by ``models``, whose rows are
        read instead of computing the group's."""
        if not group:
            return []
        kwargs = {"as_of": as_of, "policy": self.policy,
                  "debtor_ids": [d.debtor_id for d in group],
                  "opted_out": opted, "open_invoice_ids": open_ids}
        if models is not None:
            try:
                return recommend(tables, models=models, model_version=version, scored=scored,
                                 **kwargs)
            except NonFiniteForecastError as exc:  # a NaN leaf, an overflow: never served
                logger.error("model %s gave a non-finite forecast (%s): rule-based fallback "
                             "for this call", version, exc)
                with self._lock:
                    self.failing = f"model {version} gave a non-finite forecast ({exc}): " \
                                   "answering such calls with the rule-based fallback"
                    self.failing_reason = "model_output_not_finite"
            except Exception as exc:  # noqa: BLE001 - a model failing at predict time
                logger.error("model %s failed at predict time (%s): rule-based fallback",
                             version, type(exc).__name__)
                with self._lock:
                    self.failing = f"model {version} failed at predict time " \
                                   f"({type(exc).__name__}): answering with the rule-based " \
                                   "fallback"
                    self.failing_reason = "model_failing"
        if scored is not None and scored.models is not None:  # scored by the failing models
            scored = None
            tables, kwargs["open_invoice_ids"] = request_tables(group, tables)[:2]
        return recommend(tables, models=None, model_version=FALLBACK_VERSION, scored=scored,
                         **kwargs)

    def warm(self, as_of: dt.date) -> None:
        """Start the stored book's day ``as_of`` in the background, as the first call about
        stored debtors that day would (``serve`` does it for today when it starts)."""
        if self.stored.invoices.height:
            self._days.ready(self.stored, as_of, self.models, lambda: self.stored)

    def warm_each_day(self) -> threading.Thread:
        """Start today's day of the stored book now, and each next one at local midnight, in
        a daemon thread (until :meth:`close`): a dunning engine's calls about today then
        find their rows ready."""
        def loop():
            while True:
                today = dt.date.today()
                self.warm(today)
                midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time())
                if self._stop.wait(max(1.0, (midnight - dt.datetime.now()).total_seconds())):
                    return

        thread = threading.Thread(target=loop, name="paycadence-day-warm", daemon=True)
        thread.start()
        return thread

    def day_ready(self, as_of: dt.date) -> bool:
        """Whether calls about stored debtors on ``as_of`` read the day's rows (made for the
        current stored tables and models) instead of computing their own."""
        return self._days.has(self.stored, as_of, self.models)

    def ready_days(self) -> list[dt.date]:
        """The days :meth:`day_ready` is true of, oldest first (``/health`` lists them)."""
        return self._days.days_ready(self.stored, self.models)

    def prepare(self, as_of: dt.date) -> bool:
        """Make the stored book's day ``as_of`` now (features and forecasts of every stored
        debtor), as the first call of a day starts in the background; returns whether it
        was made."""
        return self._days.prepare(self.stored, as_of, self.models,
                                  lambda: self.stored) is not None


@dataclass
class _Feed:
    """Where :meth:`Engine.catch_up` reads the feedback store from."""

    store: FeedbackStore
    every: float  # seconds between looks; 0: before every stored-debtor call
    seq: int  # every row up to this transaction number has been added
    checked: float = 0.0  # time.monotonic() of the last look
    failing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _resolutions(posted: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame | None:
    """Disputes of ``posted`` already held whose ``resolved_on`` is new (key and date), or
    None."""
    keys = list(KEYS["disputes"])
    pairs = posted.filter(pl.col("resolved_on").is_not_null()).select(*keys, "resolved_on")
    changed = pairs.join(held.select(*keys, pl.col("resolved_on").alias("held")),
                         on=keys, how="inner", nulls_equal=True).filter(
        pl.col("resolved_on").ne_missing(pl.col("held"))).drop("held")
    return changed if changed.height else None


def request_tables(debtors: list[DebtorIn], base: Tables | None):
    """Tables for a group of request debtors, the open invoices to score, opted-out overrides.

    Stateless debtors (``base`` None) bring their whole history. Stored debtors read ``base``.
    In both cases a debtor's ``open_invoices``, when given, are the open set, and each one's
    ``amount_paid`` is authoritative: payments for it are replaced by one payment of that
    amount dated on its issue date (docs/api.md). A debtor without ``open_invoices`` has open
    whatever its history leaves open on ``as_of``.
    """
    ids = [d.debtor_id for d in debtors]
    tables = base.for_debtors(ids) if base is not None else Tables.from_frames()
    rows = {name: _Columns(name) for name in ("invoices", "payments", "actions", "disputes")}
    debtor_rows = []
    listed: dict[str, float] = {}
    open_ids: list[str] = []
    whole: list[str] = []  # stored debtors without a list: every invoice of theirs may be open
    for d in debtors:
        debtor_rows.append({"debtor_id": d.debtor_id, "segment": d.segment,
                            "country": d.country, "created_on": d.created_on})
        if d.history is not None:
            h = d.history
            rows["invoices"].add_models(h.invoices, debtor_id=d.debtor_id)
            rows["payments"].add_models(h.payments)
            rows["actions"].add_models(h.actions)
            rows["disputes"].add_models(h.disputes)
            if not d.open_invoices:
                open_ids += [r["invoice_id"] for r in h.invoices]
        for inv in d.open_invoices:
            listed[inv.invoice_id] = inv.amount_paid
            rows["invoices"].add({"invoice_id": inv.invoice_id, "debtor_id": d.debtor_id,
                                  "issue_date": inv.issue_date, "due_date": inv.due_date,
                                  "amount": inv.amount, "currency": inv.currency})
            open_ids.append(inv.invoice_id)
        if not d.open_invoices and base is not None:
            whole.append(d.debtor_id)
    if whole:
        open_ids += tables.invoices.filter(pl.col("debtor_id").is_in(
            pl.Series(whole, dtype=pl.String).implode()))["invoice_id"].to_list()
    if base is not None:
        known_debtors = set(tables.debtors["debtor_id"].to_list())
        if rows["invoices"].n == 0 and all(d in known_debtors for d in ids):
            # stored debtors named by id only (the usual call): nothing to add to their rows
            tables = Tables(**{name: frame.select(list(COLUMNS[name]))
                               for name, frame in tables.items()})
        else:
            new = _new_tables(debtor_rows, rows)
            new = Tables(
                debtors=new.debtors.filter(~pl.col("debtor_id").is_in(list(known_debtors))),
                invoices=new.invoices.filter(~pl.col("invoice_id").is_in(
                    tables.invoices["invoice_id"].to_list())),
                payments=new.payments, actions=new.actions, disputes=new.disputes)
            tables = tables.concat(new)
    else:
        tables = _new_tables(debtor_rows, rows)
    tables = tables_with_invoice_dedup(tables)
    if listed:
        tables = _authoritative_payments(tables, listed)
    opted = {d.debtor_id: frozenset(d.opted_out) for d in debtors if d.opted_out is not None}
    return tables, open_ids, opted


def tables_with_invoice_dedup(tables: Tables) -> Tables:
    """One row per invoice id (the first), as ingest would keep it."""
    return Tables(tables.debtors.unique("debtor_id", keep="first", maintain_order=True),
                  tables.invoices.unique("invoice_id", keep="first", maintain_order=True),
                  tables.payments, tables.actions, tables.disputes)


def _authoritative_payments(tables: Tables, listed: dict[str, float]) -> Tables:
    """Replace payments of listed open invoices by one payment of ``amount_paid``."""
    ids = list(listed)
    keep = tables.payments.filter(~pl.col("invoice_id").is_in(ids))
    issue = dict(zip(tables.invoices["invoice_id"], tables.invoices["issue_date"], strict=True))
    extra = pl.DataFrame(
        [{"invoice_id": i, "paid_on": issue[i], "amount": a} for i, a in listed.items() if a > 0],
        schema=COLUMNS["payments"],
    )  # every contract column (payment_id: none), as every other payments frame has
    payments = pl.concat([keep.select(list(COLUMNS["payments"])), extra])
    return Tables(tables.debtors, tables.invoices, payments, tables.actions, tables.disputes)


def _new_tables(debtor_rows: list[dict], rows: dict[str, _Columns]) -> Tables:
    """The request's own rows as contract tables."""
    return Tables.from_frames(
        debtors=pl.DataFrame(debtor_rows, schema={"debtor_id": pl.String, "segment": pl.String,
                                                  "country": pl.String, "created_on": pl.Date}),
        **{name: columns.frame() for name, columns in rows.items()},
    )


class _Columns:
    """Rows of one table gathered column by column (a stateless call carries tens of
    thousands of them)."""

    def __init__(self, name: str):
        self.schema = COLUMNS[name]
        self.columns: dict[str, list] = {c: [] for c in self.schema}
        self.n = 0

    def add_models(self, models: list[dict], **fixed) -> None:
        """Validated request rows (typed dicts); a column a row lacks is null, ``fixed`` sets
        one for all."""
        for c, out in self.columns.items():
            if c in fixed:
                out.extend([fixed[c]] * len(models))
            else:
                out.extend([m.get(c) for m in models])
        self.n += len(models)

    def add(self, row: dict) -> None:
        for c, out in self.columns.items():
            out.append(row.get(c))
        self.n += 1

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.columns, schema=self.schema)

"""A book: one company's receivables, the unit every model version, feedback row and report
belongs to (docs/operations.md, "Books").

A book has a name: the one the user gives (``--book``, ``PAYCADENCE_BOOK``), or else the one
derived from the data: the ``book`` ``paycadence ingest`` recorded in a clean folder's
``summary.json`` (the name of the folder it read), or the data folder's own name. A named book
(given, not derived) gets a registered model of its own, ``<model name>.<book>``, so that one
MLflow store holds many books side by side; a derived name is recorded on every version and
checked by every command that decides, so that a champion trained on one company never decides
for another without a word (``--allow-other-book`` to do it on purpose).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from paycadence.errors import ConfigError, InputError

#: The model version tag (and run tag) naming the book a version was trained on.
BOOK_TAG = "book"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def valid_book(name: str) -> str:
    """``name`` when it can name a book: letters, digits, ``-`` and ``_``, 1-64 characters,
    starting with a letter or digit (it becomes part of a registered model's name)."""
    if not _NAME.match(name or ""):
        raise ConfigError(f"book name '{name[:80]}': use 1-64 letters, digits, '-' or '_', "
                          "starting with a letter or digit")
    return name


def derived_book(data_dir: str | Path) -> str:
    """The book a data folder belongs to when none is given: the ``book`` of its
    ``summary.json`` (a folder ``paycadence ingest`` wrote), else the folder's own name made a
    valid book name."""
    folder = Path(data_dir)
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            book = json.loads(summary.read_text(encoding="utf-8")).get("book")
        except (OSError, ValueError):
            book = None
        if isinstance(book, str) and _NAME.match(book):
            return book
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", folder.resolve().name).strip("-_")[:64]
    return name or "book"


def book_of(data_dir: str | Path | None, given: str | None) -> str | None:
    """The book of a command: ``given`` (checked), else derived from ``data_dir``."""
    if given:
        return valid_book(given)
    return derived_book(data_dir) if data_dir is not None else None


def registered_name(base: str, given: str | None) -> str:
    """The registered model a book's versions go to: its own, ``<base>.<book>``, for a book
    the user named; ``base`` otherwise."""
    return f"{base}.{valid_book(given)}" if given else base


#: The model version tag holding a sample of the book's debtors (:func:`signature`).
SIGNATURE_TAG = "book_signature"
#: Debtors in a signature: the ones whose hashed ids are smallest (a bottom-k sample, the same
#: debtors whichever export of the book holds them).
SIGNATURE_SIZE = 200
#: Below this many debtors on either side, debtors alone cannot tell two books apart.
MIN_DEBTORS = 20


def _hash(debtor_id: str) -> str:
    return hashlib.sha256(debtor_id.encode("utf-8")).hexdigest()[:10]


def signature(debtor_ids: Iterable[str]) -> str:
    """A sample of a book's debtors that another export of the same book shares: the
    :data:`SIGNATURE_SIZE` smallest hashes of its debtor ids, space-separated (ids themselves
    are never recorded)."""
    return " ".join(sorted({_hash(str(d)) for d in debtor_ids})[:SIGNATURE_SIZE])


def shares_debtors(recorded: str | None, debtor_ids: Iterable[str]) -> bool | None:
    """Whether ``debtor_ids`` include any debtor of a recorded :func:`signature`; None when
    either side is too small to tell (under :data:`MIN_DEBTORS`)."""
    sample = set((recorded or "").split())
    ids = {_hash(str(d)) for d in debtor_ids}
    if len(sample) < MIN_DEBTORS or len(ids) < MIN_DEBTORS:
        return None
    return not sample.isdisjoint(ids)


@dataclass(frozen=True)
class BookChoice:
    """A command's book: its name, whether the user named it, and whether a champion of
    another book may decide for it on purpose (``--allow-other-book``)."""

    name: str | None = None
    named: bool = False
    allow_other: bool = False

    @classmethod
    def of(cls, data_dir: str | Path | None, given: str | None,
           allow_other: bool = False) -> BookChoice:
        return cls(book_of(data_dir, given), bool(given), allow_other)

    def check(self, tags: dict[str, str], debtor_ids: Iterable[str] | None, what: str) -> None:
        """:func:`check_champion_book` with this choice."""
        check_champion_book(tags, book=self.name, named=self.named, debtor_ids=debtor_ids,
                            what=what, allow=self.allow_other)


def check_champion_book(tags: dict[str, str], *, book: str | None, named: bool,
                        debtor_ids: Iterable[str] | None, what: str, allow: bool) -> None:
    """Refuse to decide for ``book`` (or learn into its registered model) with a champion
    trained on another.

    A book the user named (``named``) is compared by name with the champion's ``book`` tag. A
    derived name is not (an export of the same book may sit in a folder of another name): the
    debtors are, a champion whose recorded debtors (:data:`SIGNATURE_TAG`) none of
    ``debtor_ids`` are is another company's.

    Raises
    ------
    InputError
        One line naming both books and the three ways out.
    """
    theirs = tags.get(BOOK_TAG)
    if allow or not theirs or not book:
        return
    if named:
        other = theirs != book
    else:
        other = debtor_ids is not None and shares_debtors(
            tags.get(SIGNATURE_TAG), debtor_ids) is False
    if other:
        raise InputError(f"{what} was trained on book '{theirs}', not on this one ('{book}', "
                         "no debtor in common): train on this book first, give each book its "
                         "own name with --book (one registered model each), or pass "
                         "--allow-other-book to use it anyway")

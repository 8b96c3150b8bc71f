"""Errors of the bag tools: each message is one readable line naming the bag."""
from __future__ import annotations


class BagError(Exception):
    """A bag that cannot be used; the message is one readable line naming the bag."""


class TruncatedBagError(BagError):
    """The bag ends mid-write or is damaged; raised after the readable messages."""


class PartialResultsError(BagError):
    """A run stopped by a bad input after writing the results of what it processed."""


def one_line(exc: BaseException) -> str:
    """``exc`` as one line without a trailing full stop (its type name when empty)."""
    text = ' '.join(str(exc).split()) or type(exc).__name__
    return text.rstrip('.')

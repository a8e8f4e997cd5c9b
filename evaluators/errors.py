"""Exceptions of the evaluators package."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file is corrupt, truncated or not in the expected layout.

    The message names the offending path and the layout that was expected.
    """


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset directory or file is missing (and could not be downloaded)."""


class Diverged(ArithmeticError):
    """Training produced a non-finite loss; the message says where (epoch and step)."""

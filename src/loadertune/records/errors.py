"""The errors and warnings loadertune raises, each naming its cause."""

from __future__ import annotations


class LoadertuneError(Exception):
    """Base of every error loadertune raises on purpose."""


class UsageError(LoadertuneError, ValueError):
    """Bad input from the user: a target that cannot be loaded, a bad option value.

    The CLI prints the message on one line and exits with code 2.
    """


class TrialTimeout(LoadertuneError):  # noqa: N818 - reads as the event it reports
    """No batch arrived within the trial timeout."""


class LoadertuneWarning(UserWarning):
    """A measurement or a setting that deserves the user's attention."""

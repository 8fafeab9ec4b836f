"""The project's base for expected failures: things a user can fix, reported without a traceback.

Why a base class: ``sam2-ros`` turns every expected failure of every subcommand into one line
and exit code 2 (``sam2_ros.cli.run_command``). Errors raised with a message written for the
user (a damaged bag, a download that cannot reach its server) derive from ``UserError`` so that
new subcommands inherit that handling without listing their exception types.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected failure whose message says what went wrong and what to do about it."""


class UsageError(UserError, ValueError):
    """A setting or option the user gave that cannot work (a bound, a type, a combination)."""


class InputError(UserError):
    """An input the user named that cannot be read whole: missing, corrupt, truncated, mis-sized."""


class OutputError(UserError):
    """An output that cannot be written or would overwrite something the user did not ask to replace."""

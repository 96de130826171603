"""Errors lockstep shows to people: what happened, what is allowed, the fix.

Every error a user can cause derives from ``LockstepError``; the CLI prints its message
without a traceback and exits 2 (1 is kept for "checked, and the answer is no").
"""


class LockstepError(Exception):
    """An error whose message is written for the person who caused it."""

    exit_code = 2

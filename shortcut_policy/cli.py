"""What the command-line entry points share: bad input ends with its message, not a traceback.

The errors below are raised for what a user gave (a setting, a checkpoint, a dataset, a step
budget, a run folder) and their messages name the problem and the fix, so the entry points print
just that and exit with status 2. Anything else is a bug and keeps its traceback; so does
everything when ``SHORTCUT_POLICY_DEBUG=1`` is set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from shortcut_policy.checkpoints.files import CheckpointError
from shortcut_policy.data.replay_buffer import DatasetError
from shortcut_policy.extras import MissingExtra
from shortcut_policy.objectives.sampling import BudgetError
from shortcut_policy.training.settings import ConfigError

USER_ERRORS = (
    ConfigError,
    CheckpointError,
    DatasetError,
    BudgetError,
    FileExistsError,
    MissingExtra,
)


@contextmanager
def user_errors(program: str) -> Iterator[None]:
    """Turn a :data:`USER_ERRORS` exception into ``[program] error: ...`` and exit status 2."""
    try:
        yield
    except USER_ERRORS as err:
        if os.environ.get("SHORTCUT_POLICY_DEBUG") == "1":
            raise
        print(f"[{program}] error: {err}", file=sys.stderr)
        sys.exit(2)

"""Optional dependencies (the extras in pyproject.toml): import one, or say how to install it.

Simulators, HDF5 files, serving and export each need packages that a plain install leaves
out. Every place that needs one asks here, so the message always names the package, what
needed it, and the one command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional package is not installed; the message gives the install command."""


def require(module: str, what: str, extra: str) -> ModuleType:
    """``module`` imported, or a :class:`MissingExtra` naming ``what`` needed it and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(
            f"{what} needs the {module!r} package, which is not installed ({err}); "
            f'install the {extra} extra: pip install -e ".[{extra}]"'
        ) from err

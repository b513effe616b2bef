"""Clear errors when a package is imported without the extra that provides its dependencies."""

from __future__ import annotations

import importlib.util

DISTRIBUTION = "steerlm-integrations"


def require_extra(package: str, extra: str, modules: tuple[str, ...]) -> None:
    """Raise an ``ImportError`` naming the pip extra when a needed module is missing.

    Args:
        package: The package being imported, e.g. ``"langchain_steerlm"``.
        extra: The extra that installs its dependencies, e.g. ``"langchain"``.
        modules: Top-level modules it needs, e.g. ``("langchain_core",)``.

    Raises:
        ImportError: One of ``modules`` is not installed.
    """
    missing = [name for name in modules if not _installed(name)]
    if missing:
        raise ImportError(
            f"{package} needs {', '.join(missing)}, which is not installed. Install the "
            f"extra: pip install '{DISTRIBUTION}[{extra}]'",
            name=missing[0],
        )


def _installed(module: str) -> bool:
    # find_spec looks without importing the module itself (a dotted name imports its parent).
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False

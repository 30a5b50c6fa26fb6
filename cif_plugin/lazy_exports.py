"""Package attributes imported on first use, so a package's torch-free modules load without torch."""

import importlib
from typing import Callable, Dict

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, exports: Dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module relative
    to the package) when ``name`` is first read."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    return __getattr__

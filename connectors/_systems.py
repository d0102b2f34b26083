"""Every ``System`` the unit declared, by name: what a robot declared in a TOML file names by ``system =``.

A Python robot imports its system; a declared one can only say its name, so the declarations
are found the way robots are: every module of ``connectors/`` not starting with ``_`` is imported.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import TYPE_CHECKING

from connectors._system import System

if TYPE_CHECKING:
    from settings import Settings


def systems(package: str = "connectors") -> dict[str, System]:
    """The ``System`` instances that the modules of ``package`` hold, by ``.name``.

    A system imported into another module (``from connectors.sandbox import population``) is the
    same one; two different declarations of one name would make ``system = "..."`` ambiguous.
    """
    found: dict[str, tuple[System, str]] = {}
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for value in vars(module).values():
            if not isinstance(value, System):
                continue
            known = found.setdefault(value.name, (value, module.__name__))
            if known[0] != value:
                raise ValueError(
                    f"有两个不同的系统都叫 {value.name!r}（{known[1]} 和 {module.__name__}）："
                    "请给其中一个另起 name"
                )
    return {name: system for name, (system, _) in sorted(found.items())}


def configured(declared: System, settings: Settings) -> System:
    """``declared`` as this unit runs it: at the base URL and within the politeness the settings give
    (``HARVEST_SYSTEM_URLS``, ``HARVEST_POLITENESS``), else as declared."""
    system = declared
    url = settings.system_urls.get(declared.name)
    if url:
        system = dataclasses.replace(system, base_url=url)
    limits = settings.politeness.get(declared.name)
    if limits is not None:
        politeness = dataclasses.replace(system.politeness, **limits.given())
        system = dataclasses.replace(system, politeness=politeness)
    return system

"""Connectors: how gridharvest reaches each vertical system.

Modules named ``_*.py`` are the framework (browser lifecycle, login, politeness);
every other module declares one of the unit's systems.
"""

from connectors._browser import CHROMIUM_ARGS, ChromiumMissing, launch_options

__all__ = ["CHROMIUM_ARGS", "ChromiumMissing", "launch_options"]

"""Robots: the robot author's API (this module), the runtime (``robots.runtime``), and the unit's robots.

A robot harvests one dataset from one system. Its record class says the fields, each by the title
staff read (the header it is read by), the natural key and the personal-data roles; its walk says
how to reach the rows::

    from robots import Field, Record, robot
    from connectors.sandbox import population

    class Person(Record):
        id_number: str = Field(key=True, role="id_number", title="身份证号")
        name: str = Field(role="name", title="姓名")
        community: str = Field(role="community", title="社区")  # filled from the account's scope

    @robot(system=population, record=Person, title="居民信息")
    def persons(walk):
        return walk.pages("/persons?page={n}", last=".pagination a").table("table.persons", Person)

Every other module in this folder, and every ``*.toml`` file, is one of the unit's robots; modules
named ``_*.py`` are the framework, ``robots.testing`` the authors' test helpers. ``sandbox_*`` are
the demo robots of the bundled sandbox systems.
"""

from connectors import HarvestFailure, LayoutChanged, NeedsHuman, SystemUnavailable
from robots._page import Page
from robots._registry import robot
from robots._walk import Walk
from store import Field, Record

__all__ = [
    "Field",
    "HarvestFailure",
    "LayoutChanged",
    "NeedsHuman",
    "Page",
    "Record",
    "SystemUnavailable",
    "Walk",
    "robot",
]

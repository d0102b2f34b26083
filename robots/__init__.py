"""Robots: the robot author's API and runner (modules named ``_*.py``), and the unit's own robots.

A robot is an async generator function of one ``Walk``, registered with ``@robot``::

    from robots import Field, Record, robot
    from connectors.sandbox import population

    class Person(Record):
        id_number: str = Field(key=True, role="id_number", title="身份证号")
        name: str = Field(role="name", title="姓名")

    @robot(system=population, record=Person)
    async def people(walk):
        async for page in walk.pages("/persons?size=100&page={n}"):
            for row in page.table("table.persons", columns={"身份证号": "id_number", "姓名": "name"}):
                yield row

Every other module in this folder is one of the unit's robots; ``sandbox_*.py`` are the
demo robots of the bundled sandbox systems.
"""

from connectors import (
    AccountLocked,
    BadCredentials,
    HarvestFailure,
    LayoutChanged,
    NeedsHuman,
    SystemUnavailable,
)
from robots._page import Page
from robots._registry import (
    RobotDeclarationError,
    RobotSpec,
    broken,
    dataset_titles,
    discover,
    registered,
    robot,
)
from robots._runner import Harvester, RunReport, run_blocking
from robots._walk import Walk
from store import Field, Record

__all__ = [
    "AccountLocked",
    "BadCredentials",
    "Field",
    "HarvestFailure",
    "Harvester",
    "LayoutChanged",
    "NeedsHuman",
    "Page",
    "Record",
    "RobotDeclarationError",
    "RobotSpec",
    "RunReport",
    "SystemUnavailable",
    "Walk",
    "broken",
    "dataset_titles",
    "discover",
    "registered",
    "robot",
    "run_blocking",
]

"""人口管理系统: server-rendered list pages with numbered pagination, a search form and detail pages."""

from __future__ import annotations

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox._paging import paging
from sandbox._system import Dataset, SandboxSystem, SystemSpec
from sandbox._world import World

PERSON_COLUMNS = [
    ("姓名", "name"),
    ("身份证号", "id_number"),
    ("性别", "gender"),
    ("出生日期", "birth_date"),
    ("手机号", "phone"),
    ("与户主关系", "relation"),
    ("户号", "household_no"),
    ("住址", "address"),
    ("人口类型", "residence_type"),
    ("标签", "tags"),
]
# The drifted layout: 身份证号 renamed and the columns reordered, as after a vendor upgrade.
PERSON_COLUMNS_CHANGED = [
    ("公民身份号码", "id_number"),
    ("姓名", "name"),
    ("手机号", "phone"),
    ("性别", "gender"),
    ("出生日期", "birth_date"),
    ("住址", "address"),
    ("户号", "household_no"),
    ("与户主关系", "relation"),
    ("人口类型", "residence_type"),
    ("标签", "tags"),
]
HOUSEHOLD_COLUMNS = [
    ("户号", "household_no"),
    ("户主", "head"),
    ("住址", "address"),
    ("小区", "compound"),
    ("楼栋", "building"),
    ("单元", "unit"),
    ("室", "room"),
    ("网格", "grid"),
    ("人数", "size"),
]
HOUSEHOLD_COLUMNS_CHANGED = [
    ("户编号", "household_no"),
    ("住址", "address"),
    ("户主", "head"),
    ("人数", "size"),
    ("网格", "grid"),
    ("小区", "compound"),
    ("楼栋", "building"),
    ("单元", "unit"),
    ("室", "room"),
]
TAGS = ("独居老人", "低保", "残疾")


def _households(world: World) -> pd.DataFrame:
    heads = world.persons.loc[world.persons["relation"] == "户主", ["household_no", "name"]]
    heads = heads.drop_duplicates("household_no").rename(columns={"name": "head"})
    return world.households.merge(heads, on="household_no", how="left").fillna({"head": ""})


def _search(frame: pd.DataFrame, **contains: str) -> pd.DataFrame:
    for column, text in contains.items():
        text = text.strip()
        if text:
            frame = frame[frame[column].str.contains(text, regex=False)]
    return frame


def add_routes(app: FastAPI, system: SandboxSystem) -> None:
    @app.get("/persons")
    async def persons(
        request: Request,
        page: int = 1,
        size: int = 20,
        name: str = "",
        id_number: str = "",
        compound: str = "",
        tag: str = "",
    ) -> Response:
        session = system.user(request)
        assert session.username is not None
        scoped = system.scoped("persons", session.username)
        found = _search(scoped, name=name, id_number=id_number, address=compound, tags=tag)
        pager = paging(len(found), page, size)
        columns = system.layout(PERSON_COLUMNS, PERSON_COLUMNS_CHANGED)
        return system.render(
            request,
            "population_persons.html",
            session=session,
            rows=found.iloc[pager.start : pager.stop],
            columns=columns,
            pager=pager,
            tags=TAGS,
            compounds=sorted(system.scoped("households", session.username)["compound"].unique()),
            query={
                "name": name,
                "id_number": id_number,
                "compound": compound,
                "tag": tag,
                "size": pager.size,
            },
        )

    @app.get("/persons/{person_id}")
    async def person(request: Request, person_id: int) -> Response:
        session = system.user(request)
        row = system.visible(session, system.world.persons, "person_id", person_id).iloc[0]
        columns = system.layout(PERSON_COLUMNS, PERSON_COLUMNS_CHANGED)
        return system.render(request, "population_person.html", session=session, row=row, columns=columns)

    @app.get("/households")
    async def households(
        request: Request, page: int = 1, size: int = 20, household_no: str = "", compound: str = ""
    ) -> Response:
        session = system.user(request)
        assert session.username is not None
        found = _search(
            system.scoped("households", session.username), household_no=household_no, compound=compound
        )
        pager = paging(len(found), page, size)
        columns = system.layout(HOUSEHOLD_COLUMNS, HOUSEHOLD_COLUMNS_CHANGED)
        return system.render(
            request,
            "population_households.html",
            session=session,
            rows=found.iloc[pager.start : pager.stop],
            columns=columns,
            pager=pager,
            query={"household_no": household_no, "compound": compound, "size": pager.size},
        )

    @app.get("/households/{household_no}")
    async def household(request: Request, household_no: str) -> Response:
        session = system.user(request)
        home = system.visible(session, system.world.households, "household_no", household_no).iloc[0]
        members = system.world.persons[system.world.persons["household_no"] == household_no]
        columns = system.layout(PERSON_COLUMNS, PERSON_COLUMNS_CHANGED)
        return system.render(
            request, "population_household.html", session=session, home=home, members=members, columns=columns
        )


SPEC = SystemSpec(
    code="population",
    title="人口管理系统",
    prefix="rk",
    cookie_name="JSESSIONID",
    home="/persons",
    datasets=(
        Dataset("persons", "id_number", lambda world: world.persons),
        Dataset("households", "household_no", _households),
    ),
    add_routes=add_routes,
)

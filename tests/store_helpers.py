"""A small record class and row maker the store tests share (also run by the kill test's child process)."""

from __future__ import annotations

import sys
from typing import Any

from store import Field, Record, Run, Store, make_engine


class Resident(Record):
    id_number: str = Field(key=True, role="id_number")
    name: str = Field(role="name")
    address: str = Field(role="address")


def people(n: int, *, start: int = 0, address: str = "东湖花园1栋") -> list[dict[str, str]]:
    return [
        {"id_number": f"ID{i:06d}", "name": f"居民{i}", "address": address} for i in range(start, start + n)
    ]


def begin(
    store: Store, *, model: type[Record] = Resident, dataset: str = "residents", scope: str = "donghu"
) -> str:
    return store.begin_run(
        robot=dataset, dataset=dataset, model=model, system="population", account=scope, scope=scope
    )


def harvest(
    store: Store,
    rows: list[dict[str, Any]],
    *,
    complete: bool = True,
    model: type[Record] = Resident,
    dataset: str = "residents",
    scope: str = "donghu",
) -> Run:
    """One whole run: begin, stage ``rows``, publish."""
    run_id = begin(store, model=model, dataset=dataset, scope=scope)
    store.stage(run_id, rows)
    return store.publish(run_id, complete=complete)


def reharvest(url: str, n: int) -> None:
    """The kill test's child: a second harvest that changes every 10th record and drops the last 2%."""
    store = Store(make_engine(url))
    run_id = begin(store)
    rows = people(int(n * 0.98))
    for row in rows[::10]:
        row["address"] = "西苑小区9栋"
    print("staging", flush=True)
    store.stage(run_id, rows)
    print("publishing", flush=True)
    store.publish(run_id)
    print("published", flush=True)


if __name__ == "__main__":
    reharvest(sys.argv[1], int(sys.argv[2]))

"""Desk benchmark: the staff search page over a million-person snapshot, against the store's own search.

    .venv/bin/python bench/desk.py [--persons 1000000] [--probes 20] [--db FILE]

Loads a sandbox world (persons, households, elderly-care records) into a snapshot as the demo robots
would (``--db`` keeps it for the next run), serves the desk on 127.0.0.1, logs in as a staff member of
one community and as an admin, and times whole HTTP requests of each kind of search: the page staff
see, rendered and masked, across every dataset. The baseline is the same search through
``Snapshot.query`` on the persons dataset alone, with no web layer. Prints p50/p95 and the ratio.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desk import create_app
from sandbox import World, generate_world
from settings import load_settings
from store import Snapshot
from tests.desk_helpers import PASSWORD, seed_snapshot, served


def log_in(client: httpx.Client, name: str) -> None:
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf, "no login form"
    answer = client.post("/login", data={"name": name, "password": PASSWORD, "csrf": csrf[1]})
    assert answer.status_code == 303, f"login as {name} failed: {answer.status_code}"


def percentiles(action: Callable[[str], object], probes: list[str]) -> tuple[float, float]:
    times = []
    for probe in probes:
        started = time.perf_counter()
        action(probe)
        times.append((time.perf_counter() - started) * 1000)
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def probes_of(world: World, count: int) -> dict[str, list[str]]:
    persons = world.persons
    sample = persons.sample(count, random_state=5)
    return {
        "2-character name": [n for n in persons["name"].drop_duplicates() if len(n) == 2][:count],
        "3-character name": [n for n in sample["name"] if len(n) == 3][:count] or ["张晓明"],
        "surname (1 character)": list(sample["name"].str[0]),
        "ID fragment (8 digits)": [i[6:14] for i in sample["id_number"]],
        "phone tail (6 digits)": [p[-6:] for p in sample["phone"] if p],
        "address fragment": [a[:7] for a in sample["address"]],
        "no match": [f"无此人{i}" for i in range(count)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=20, help="searches of each kind")
    parser.add_argument("--db", type=Path, help="snapshot file to reuse (made when missing)")
    args = parser.parse_args()

    world = generate_world(seed=5, persons=args.persons)
    db = args.db or Path(tempfile.mkdtemp(prefix="bench-desk-")) / "harvest.db"
    settings = load_settings(data_dir=db.parent, database_url=f"sqlite:///{db}")
    if not db.exists():
        started = time.perf_counter()
        seed_snapshot(settings, world)
        print(f"snapshot of {args.persons:,} persons loaded in {time.perf_counter() - started:.0f} s: {db}")
    app = create_app(settings)
    staff = app.state.desk.staff
    community = str(world.persons["community"].iloc[0])
    for name, role, scope in (("bench_clerk", "staff", community), ("bench_admin", "admin", None)):
        if name not in {u.name for u in staff.users()}:
            staff.add(name, PASSWORD, role=role, scope=scope)
    snapshot = Snapshot(app.state.desk.snapshot.engine)
    kinds = probes_of(world, args.probes)

    with served(app) as url, httpx.Client(base_url=url) as clerk, httpx.Client(base_url=url) as admin:
        log_in(clerk, "bench_clerk")
        log_in(admin, "bench_admin")
        print(
            f"\n{'search':26}{'store p50/p95 ms':>20}{'desk staff p50/p95':>22}"
            f"{'desk admin p50/p95':>22}{'x store':>9}"
        )
        for kind, probes in kinds.items():
            store_p50, store_p95 = percentiles(
                lambda q: snapshot.query("persons", search=q, limit=51, refs=True), probes
            )
            clerk_p50, clerk_p95 = percentiles(
                lambda q: clerk.get("/", params={"q": q}).raise_for_status(), probes
            )
            admin_p50, admin_p95 = percentiles(
                lambda q: admin.get("/", params={"q": q}).raise_for_status(), probes
            )
            print(
                f"{kind:26}{store_p50:>10.1f}{store_p95:>10.1f}{clerk_p50:>11.1f}{clerk_p95:>11.1f}"
                f"{admin_p50:>11.1f}{admin_p95:>11.1f}{admin_p95 / max(store_p95, 0.1):>8.1f}x"
            )
        links = [
            re.findall(r'href="(/person/[\w-]+)"', admin.get("/", params={"q": i}).text)[0]
            for i in world.persons["id_number"].sample(args.probes, random_state=6)
        ]
        p50, p95 = percentiles(lambda path: admin.get(path).raise_for_status(), links)
        print(f"\nperson pages (一人一档 + history, admin): p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        homes = [
            f"/household/{h}" for h in world.households["household_no"].sample(args.probes, random_state=7)
        ]
        p50, p95 = percentiles(lambda path: admin.get(path).raise_for_status(), homes)
        print(f"household pages (admin): p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        pages = [f"/datasets/persons?tags=独居老人&page={n}" for n in (1, 2, 10, 50)]
        pages += ["/datasets/persons?tags=独居老人&absent=elderly"]
        pages += [
            "/datasets/persons?page=1",
            "/datasets/persons?page=2000",
            "/datasets/households?grid=第1网格",
        ]
        p50, p95 = percentiles(lambda path: admin.get(path).raise_for_status(), pages)
        print(f"dataset pages (admin, filters + count + page): p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()

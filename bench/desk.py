"""Desk benchmark: the staff search page over a million-person snapshot, against the store's own search.

    .venv/bin/python bench/desk.py [--persons 1000000] [--probes 20] [--db FILE]
    .venv/bin/python bench/desk.py --load [--clients 20] [--seconds 60] [--workers 1] [--db FILE]

Loads a sandbox world (persons, households, elderly-care records) into a snapshot as the demo robots
would (``--db`` keeps it for the next run), serves the desk on 127.0.0.1, logs in as a staff member of
one community and as an admin, and times whole HTTP requests of each kind of search: the page staff
see, rendered and masked, across every dataset. The baseline is the same search through
``Snapshot.query`` on the persons dataset alone, with no web layer. Prints p50/p95 and the ratio.

``--load`` is what a street office feels at nine in the morning: ``--clients`` staff, each logged in with
their own account, searching by name and address as fast as the desk answers for ``--seconds``, against
``harvest serve`` in its own process (``--workers`` of them), first with nothing else running and then
while a harvest publishes into the same database, run after run. Prints requests/s and p50/p95/p99.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desk import create_app
from sandbox import World, generate_world
from settings import load_settings
from store import Snapshot
from tests.desk_helpers import PASSWORD, harvest_serve, seed_snapshot, served


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


def publish_loop(url: str, seconds: float, seed: int, persons: int, done: multiprocessing.Queue) -> None:
    """Harvest one community's persons again and again into the snapshot at ``url`` for ``seconds``:
    each run 1% of phones changed, staged and published as a robot's run would be."""
    from robots.sandbox_population import Person
    from store import Store, make_engine

    world = generate_world(seed=seed, persons=persons)
    store = Store(make_engine(url))
    community = str(world.persons["community"].iloc[-1])
    rows = world.persons[world.persons["community"] == community].to_dict(orient="records")
    rng = random.Random(1)
    deadline, published = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        for row in rng.sample(rows, max(1, len(rows) // 100)):
            row["phone"] = f"13{rng.randrange(10**9):09d}"
        run = store.begin_run(
            robot="persons",
            dataset="persons",
            model=Person,
            system="sandbox",
            account=community,
            scope=community,
        )
        store.stage(run, rows)
        store.publish(run)
        published += 1
    done.put((published, len(rows)))


def _searcher(
    client: httpx.Client, probes: list[str], deadline: float, times: list[float], errors: list[int]
) -> None:
    rng = random.Random(id(client))
    while time.monotonic() < deadline:
        started = time.perf_counter()
        answer = client.get("/", params={"q": rng.choice(probes)})
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            errors.append(answer.status_code)
    client.close()


def load_phase(url: str, names: list[str], probes: list[str], seconds: float) -> str:
    """One phase of the load run: every client searching for ``seconds``; its figures as a line."""
    times: list[float] = []
    errors: list[int] = []
    clients = []
    for name in names:  # one at a time: parallel logins from one address are throttled (desk._staff)
        clients.append(httpx.Client(base_url=url, timeout=30))
        log_in(clients[-1], name)
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_searcher, args=(client, probes, deadline, times, errors))
        for client in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timed = sorted(times)
    if not timed:
        return "no request answered"

    def at(share: float) -> float:
        return timed[min(len(timed) - 1, int(len(timed) * share))]

    return (
        f"{len(timed) / seconds:>8.1f}{at(0.5):>9.0f}{at(0.95):>9.0f}{at(0.99):>9.0f}"
        f"{len(timed):>9}{len(errors):>8}"
    )


def load(args: argparse.Namespace, world: World, settings: object, db: Path) -> None:
    from desk._staff import StaffDirectory
    from store import make_engine

    url = f"sqlite:///{db}"
    staff = StaffDirectory(make_engine(url))
    community = str(world.persons["community"].iloc[0])
    names = [f"bench_load_{n}" for n in range(args.clients)]
    known = {user.name for user in staff.users()}
    for name in names:
        if name not in known:
            staff.add(name, PASSWORD, role="staff", scope=community)
    mine = world.persons[world.persons["community"] == community]
    probes = list(mine["name"].sample(200, random_state=3)) + [
        a[:6] for a in mine["address"].sample(50, random_state=4)
    ]
    print(
        f"\n{args.clients} staff searching for {args.seconds:.0f} s against `harvest serve` "
        f"({args.workers} worker{'s' if args.workers > 1 else ''}), {len(world.persons):,} persons"
    )
    print(f"{'phase':28}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'requests':>9}{'errors':>8}")
    env = {"HARVEST_DESK_WORKERS": str(args.workers)}
    with harvest_serve(db.parent, **env) as desk:
        print(f"{'nothing else running':28}{load_phase(desk.url, names, probes, args.seconds)}", flush=True)
        done: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        publisher = multiprocessing.get_context("spawn").Process(
            target=publish_loop, args=(url, args.seconds + 3, 5, args.persons, done)
        )
        publisher.start()
        time.sleep(5)  # the publisher's world is generated before it publishes
        line = load_phase(desk.url, names, probes, args.seconds)
        publisher.join()
        published, size = done.get()
        print(f"{'a harvest publishing':28}{line}")
        print(f"(the harvest published {published} runs of {size:,} persons meanwhile)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=20, help="searches of each kind")
    parser.add_argument("--db", type=Path, help="snapshot file to reuse (made when missing)")
    parser.add_argument("--load", action="store_true", help="the concurrent load run instead")
    parser.add_argument("--clients", type=int, default=20, help="--load: staff searching at once")
    parser.add_argument("--seconds", type=float, default=60, help="--load: length of each phase")
    parser.add_argument(
        "--workers", type=int, default=1, help="--load: desk processes (HARVEST_DESK_WORKERS)"
    )
    args = parser.parse_args()

    world = generate_world(seed=5, persons=args.persons)
    db = args.db or Path(tempfile.mkdtemp(prefix="bench-desk-")) / "harvest.db"
    settings = load_settings(data_dir=db.parent, database_url=f"sqlite:///{db}")
    if not db.exists():
        started = time.perf_counter()
        seed_snapshot(settings, world)
        print(f"snapshot of {args.persons:,} persons loaded in {time.perf_counter() - started:.0f} s: {db}")
    if args.load:
        load(args, world, settings, db)
        return
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

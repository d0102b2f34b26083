"""How fast the sandbox world is generated, against a naive per-person Python loop.

    .venv/bin/python bench/sandbox_world.py [--persons 1000000] [--sample 100000]

The baseline makes far less (name, ID number, birth date and gender only, with no uniqueness guarantee),
so the ratio understates the gap: ours also builds households, elderly records and market subjects.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from datetime import timedelta

from sandbox import REFERENCE_DATE, generate_world
from store import id_number_check_digit

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟强磊军勇杰涛明超刚芳娜敏静丽艳娟霞秀英"
_REGIONS = ("330102", "330105", "330106", "330108", "340102", "430102")


def naive_persons(count: int, seed: int) -> list[tuple[str, str, str, str]]:
    """The obvious way: one person at a time with random.Random and string formatting."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        female = rng.random() < 0.5
        given = rng.choice(_GIVEN) + (rng.choice(_GIVEN) if rng.random() < 0.55 else "")
        born = REFERENCE_DATE - timedelta(days=rng.randrange(1, 365 * 100))
        body = f"{rng.choice(_REGIONS)}{born:%Y%m%d}{rng.randrange(499) * 2 + (2 if female else 1):03d}"
        rows.append(
            (
                rng.choice(_SURNAMES) + given,
                body + id_number_check_digit(body),
                born.isoformat(),
                "女" if female else "男",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000, help="persons in the generated world")
    parser.add_argument("--sample", type=int, default=100_000, help="persons made by the naive baseline")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    started = time.perf_counter()
    world = generate_world(seed=args.seed, persons=args.persons)
    ours_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    started = time.perf_counter()
    naive_persons(args.sample, args.seed)
    base_s = time.perf_counter() - started

    ours_rate, base_rate = args.persons / ours_s, args.sample / base_s
    print(f"{'':<34}{'persons':>12}{'seconds':>10}{'persons/s':>14}")
    print(f"{'generate_world (all four frames)':<34}{args.persons:>12,}{ours_s:>10.2f}{ours_rate:>14,.0f}")
    print(f"{'naive loop (4 columns)':<34}{args.sample:>12,}{base_s:>10.2f}{base_rate:>14,.0f}")
    print(f"{'ratio ours/baseline':<34}{'':>22}{ours_rate / base_rate:>13.1f}x")
    print(f"peak RSS after generate_world: {peak_mb:,.0f} MiB")
    rows = {name: len(getattr(world, name)) for name in ("households", "persons", "elderly", "entities")}
    print("rows: " + " · ".join(f"{name} {count:,}" for name, count in rows.items()))


if __name__ == "__main__":
    main()

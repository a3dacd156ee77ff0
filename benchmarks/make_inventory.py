"""Write a synthetic, valid inventory of any size, deterministic under a seed.

    python benchmarks/make_inventory.py --count 100000 --projects 20 --seed 1 OUT.csv
    python benchmarks/make_inventory.py --count 300 --projects 4 --seed 1 OUT.json

The same arguments give the same fleet in both formats: the CSV spells out
keyname and userid on every row, the JSON puts the common ones in "defaults"
and only the few servers that differ carry their own. Rows are written as they
are generated, so a million-row file needs no more memory than a small one.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("project_id", "server_id", "region", "keyname", "userid", "name", "owner")
REGIONS = ("eu-de", "eu-nl")
OWNERS = ("team-web", "team-data", "team-ops", "team-ml")
DEFAULT_KEYNAME = "fleet-key"
OVERRIDE_EVERY = 37  # about one server in this many has its own keyname/userid


@dataclass(slots=True)
class Fleet:
    """The per-fleet choices, and the generator the rows go on drawing from."""

    projects: tuple[tuple[str, str], ...]  # (project_id, region)
    userid: str
    rng: random.Random


def make_fleet(projects: int, seed: int) -> Fleet:
    rng = random.Random(seed)
    chosen = tuple((f"{rng.getrandbits(128):032x}", rng.choice(REGIONS)) for _ in range(projects))
    return Fleet(projects=chosen, userid=f"{rng.getrandbits(128):032x}", rng=rng)


def generate_rows(count: int, projects: int, seed: int) -> Iterator[dict[str, str]]:
    """Rows with every column filled, as the CSV has them."""
    if projects < 1:
        raise ValueError("--projects must be at least 1")
    fleet = make_fleet(projects, seed)
    rng = fleet.rng
    for n in range(1, count + 1):
        project_id, region = fleet.projects[rng.randrange(projects)]
        own = rng.randrange(OVERRIDE_EVERY) == 0
        yield {
            "project_id": project_id,
            # uuid4 from the seeded generator: random-looking, repeatable.
            "server_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "region": region,
            "keyname": f"key-{n:06d}" if own else DEFAULT_KEYNAME,
            "userid": f"{rng.getrandbits(128):032x}" if own else fleet.userid,
            "name": f"srv-{n:06d}",
            "owner": rng.choice(OWNERS),
        }


def write_csv(path: Path, count: int, projects: int, seed: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(generate_rows(count, projects, seed))


def write_json(path: Path, count: int, projects: int, seed: int) -> None:
    """One server per line, so the file stays readable and diffable."""
    defaults = {"keyname": DEFAULT_KEYNAME, "userid": make_fleet(projects, seed).userid}
    with path.open("w", encoding="utf-8") as out:
        out.write('{\n  "defaults": ' + json.dumps(defaults) + ',\n  "servers": [')
        for n, row in enumerate(generate_rows(count, projects, seed)):
            entry = {k: v for k, v in row.items() if defaults.get(k) != v}
            out.write(("," if n else "") + "\n    " + json.dumps(entry))
        out.write("\n  ]\n}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True, help="number of servers")
    parser.add_argument("--projects", type=int, default=20, help="number of projects")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same inventory")
    parser.add_argument("out", type=Path, help="output file, .csv or .json")
    args = parser.parse_args(argv)
    if args.count < 0 or args.projects < 1:
        parser.error("--count must be >= 0 and --projects >= 1")
    writers = {".csv": write_csv, ".json": write_json}
    writer = writers.get(args.out.suffix.lower())
    if writer is None:
        parser.error("the output file must end in .csv or .json")
    writer(args.out, args.count, args.projects, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

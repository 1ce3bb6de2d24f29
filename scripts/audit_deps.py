"""Check meshtutor's dependencies against a local copy of an OSV vulnerability database.

    python scripts/audit_deps.py --osv DIR          # DIR: OSV records (.yaml/.json), searched recursively
    python scripts/audit_deps.py --osv DIR --json   # the same as JSON
    python scripts/audit_deps.py --pypi             # live: PyPI's own advisories, latest releases

Why not just `pip-audit`: it asks PyPI's JSON API for each installed version
(https://pypi.org/pypi/NAME/VERSION/json) or osv.dev, and a workshop laptop or a build machine
without internet reaches neither. This script does the same check offline against any OSV
database on disk, for example a checkout of https://github.com/pypa/advisory-database
(its `vulns/` folder), so the check runs wherever that folder can be copied.

With `--pypi` it asks PyPI instead, through the one endpoint that a package-index mirror
usually passes on: https://pypi.org/pypi/NAME/json describes the newest release, with the
advisories PyPI knows for it (its "vulnerabilities" field, fed by OSV). So an installed
distribution that is the newest release is checked live; an older one is listed as not
checkable this way.

It checks two things:
  * every distribution installed in this Python environment (what runs here now), and
  * the lowest version of each direct dependency that pyproject.toml admits (what a user who
    already has an old version installed would keep: `pip install meshtutor` does not upgrade
    a dependency that already satisfies the specifier).

Exit status: 0 when nothing installed is affected, 1 when something is, 2 on bad arguments.
An advisory database is only as new as its copy: the output says the newest record it holds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    package: str  # canonical name
    ranges: tuple[tuple[tuple[str, str], ...], ...]  # ECOSYSTEM events, in order
    versions: frozenset[str]
    fixed: tuple[str, ...]
    modified: str
    summary: str

    def affects(self, version: str) -> bool:
        if version in self.versions:
            return True
        try:
            v = Version(version)
        except InvalidVersion:
            return False
        return any(_in_range(v, events) for events in self.ranges)


def _in_range(v: Version, events: tuple[tuple[str, str], ...]) -> bool:
    """OSV's ECOSYSTEM range: affected from each 'introduced' up to the next 'fixed'
    (exclusive) or 'last_affected' (inclusive)."""
    affected = False
    for kind, value in events:
        bound = Version("0") if value == "0" else _version(value)
        if bound is None:
            continue
        if kind == "introduced" and v >= bound:
            affected = True
        elif (kind == "fixed" and v >= bound) or (kind == "last_affected" and v > bound):
            affected = False
    return affected


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _records(folder: Path) -> Iterator[dict[str, object]]:
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        text = path.read_text("utf-8", errors="replace")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            print(f"{path}: not an OSV record, skipped", file=sys.stderr)
            continue
        if isinstance(data, dict):
            yield data


def load_advisories(folder: Path) -> list[Advisory]:
    found = []
    for record in _records(folder):
        if record.get("withdrawn"):  # retracted by its publisher, as pip-audit skips them
            continue
        for affected in record.get("affected") or []:  # type: ignore[union-attr]
            package = affected.get("package") or {}
            if str(package.get("ecosystem", "")).lower() != "pypi":
                continue
            ranges = []
            fixed = []
            for r in affected.get("ranges") or []:
                if r.get("type") != "ECOSYSTEM":
                    continue
                events = []
                for event in r.get("events") or []:
                    for kind, value in event.items():
                        events.append((kind, str(value)))
                        if kind == "fixed":
                            fixed.append(str(value))
                ranges.append(tuple(events))
            details = str(record.get("summary") or record.get("details") or "")
            found.append(
                Advisory(
                    id=str(record.get("id")),
                    aliases=tuple(str(a) for a in record.get("aliases") or []),  # type: ignore[union-attr]
                    package=canonicalize_name(str(package.get("name", ""))),
                    ranges=tuple(ranges),
                    versions=frozenset(str(v) for v in affected.get("versions") or []),
                    fixed=tuple(fixed),
                    modified=str(record.get("modified", "")),
                    summary=re.sub(r"\s+", " ", details)[:120],
                )
            )
    return found


def installed() -> dict[str, str]:
    return {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"] and canonicalize_name(d.metadata["Name"]) != "meshtutor"
    }


def declared_minimums() -> dict[str, str]:
    """The lowest version each direct dependency's specifier admits (its >= or == bound)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    lows = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        for spec in req.specifier:
            if spec.operator in (">=", "==", "~="):
                lows[canonicalize_name(req.name)] = spec.version
    return lows


def check(advisories: Iterable[Advisory], versions: dict[str, str]) -> list[dict[str, object]]:
    by_package: dict[str, list[Advisory]] = {}
    for advisory in advisories:
        by_package.setdefault(advisory.package, []).append(advisory)
    hits = []
    for name, version in sorted(versions.items()):
        for advisory in by_package.get(name, []):
            if advisory.affects(version):
                hits.append(
                    {
                        "package": name,
                        "version": version,
                        "id": advisory.id,
                        "aliases": list(advisory.aliases),
                        "fixed_in": list(advisory.fixed),
                        "summary": advisory.summary,
                    }
                )
    return hits


def pypi_live(versions: dict[str, str]) -> dict[str, list[dict[str, object]]]:
    """Ask PyPI about each distribution whose installed version is its newest release."""
    import urllib.error
    import urllib.request

    result: dict[str, list[dict[str, object]]] = {"affected": [], "clean": [], "unchecked": []}
    for name, version in sorted(versions.items()):
        try:
            with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=20) as r:
                data = json.load(r)
        except (OSError, ValueError) as exc:
            result["unchecked"].append({"package": name, "version": version, "why": str(exc)})
            continue
        newest = data.get("info", {}).get("version")
        if newest != version:
            why = f"not the newest release ({newest}); PyPI describes only that one here"
            result["unchecked"].append({"package": name, "version": version, "why": why})
            continue
        vulns = data.get("vulnerabilities") or []
        entry = {"package": name, "version": version, "ids": [v.get("id") for v in vulns]}
        result["affected" if vulns else "clean"].append(entry)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--osv", type=Path, help="folder of OSV records")
    parser.add_argument("--pypi", action="store_true", help="ask PyPI live (newest releases)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.pypi:
        live = pypi_live(installed())
        if args.json:
            print(json.dumps(live, indent=2))
        else:
            print(f"PyPI, live: {len(live['clean'])} newest releases with no advisory")
            for hit in live["affected"]:
                print(f"  ✘ {hit['package']} {hit['version']}: {', '.join(map(str, hit['ids']))}")
            for miss in live["unchecked"]:
                print(f"  ? {miss['package']} {miss['version']}: {miss['why']}")
        if not args.osv:
            return 1 if live["affected"] else 0
    if args.osv is None:
        parser.error("give --osv DIR, --pypi, or both")
    if not args.osv.is_dir():
        print(f"--osv {args.osv}: not a folder of OSV records", file=sys.stderr)
        return 2
    advisories = load_advisories(args.osv)
    if not advisories:
        print(f"--osv {args.osv}: no PyPI advisories found", file=sys.stderr)
        return 2
    now = installed()
    lows = declared_minimums()
    report = {
        "advisories": len(advisories),
        "packages_covered": len({a.package for a in advisories}),
        "newest_record": max(a.modified for a in advisories),
        "installed_checked": len(now),
        "installed": check(advisories, now),
        "declared_minimums": check(advisories, lows),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['advisories']} PyPI advisories on {report['packages_covered']} packages, "
            f"newest record {report['newest_record']}"
        )
        print(f"installed here: {len(now)} distributions checked")
        for hit in report["installed"]:  # type: ignore[attr-defined]
            print(
                f"  ✘ {hit['package']} {hit['version']}: {hit['id']} (fixed in {', '.join(hit['fixed_in']) or '?'}) {hit['summary']}"
            )
        if not report["installed"]:
            print("  ✔ none affected")
        print(f"lowest versions pyproject.toml admits: {len(lows)} direct dependencies")
        for hit in report["declared_minimums"]:  # type: ignore[attr-defined]
            print(
                f"  ‼ {hit['package']} {hit['version']}: {hit['id']} (fixed in {', '.join(hit['fixed_in']) or '?'})"
            )
        if not report["declared_minimums"]:
            print("  ✔ none affected")
    return 1 if report["installed"] else 0


if __name__ == "__main__":
    sys.exit(main())

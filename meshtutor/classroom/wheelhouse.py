"""A package index for the venue: the instructor's meshtutor wheel and its dependencies.

meshtutor is not on a public index, and a venue's Wi-Fi often has no internet. Before the
workshop the instructor runs ``meshtutor classroom wheelhouse``: it builds meshtutor's own wheel
from what is installed and has pip download every dependency, as wheels, for the platforms and
Python versions attendees are likely to bring. ``classroom serve`` then serves that folder
read-only as a PEP 503 "simple" index, so one command installs meshtutor at the venue:

    pip install --index-url http://HOST:PORT/simple/ --trusted-host HOST meshtutor

(``--trusted-host`` because the classroom speaks plain HTTP on the room's LAN). Each link
carries the file's sha256, which pip checks.

    https://peps.python.org/pep-0503/  the simple repository API (HTML, normalized names,
                                       #sha256= fragments, data-requires-python)
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import hashlib
import html
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from meshtutor.classroom.files import unsafe
from meshtutor.errors import MeshtutorError

_log = logging.getLogger("meshtutor.classroom")

FOLDER = "wheelhouse"  # under the classroom's --data directory
TARGETS_FILE = "targets.json"  # which platforms the build covered
PROJECT = "meshtutor"

# What attendees bring, as pip's --platform tags (one pip download per platform and Python).
# manylinux2014 expands to every older manylinux in pip; manylinux_2_28 does not, so both
# are named. macOS: the oldest version each architecture still gets wheels for, because pip
# picks one file per package, the most specific, and a wheel for a newer macOS would not
# install on an older one.
PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux-x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "linux-aarch64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x86_64": ("macosx_12_0_x86_64",),
    "windows-amd64": ("win_amd64",),
}
PYTHONS = ("3.11", "3.12", "3.13")  # meshtutor needs 3.11 or later

_WHEEL = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<tags>[^-]+-[^-]+-[^-]+)\.whl$"
)
_SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.(tar\.gz|zip)$")


class WheelhouseError(MeshtutorError):
    """The wheelhouse cannot be built (pip failed, meshtutor's wheel cannot be made)."""


def normalize(name: str) -> str:
    """PEP 503's normalized project name: ``Textual_Serve`` → ``textual-serve``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class IndexFile:
    """One downloadable file of the index."""

    project: str  # normalized
    filename: str
    sha256: str
    requires_python: str | None
    path: Path
    seen: tuple[int, int, int] = (0, 0, 0)  # (size, mtime_ns, inode) the sha256 was taken at


# (name, size, mtime_ns, inode) of each file: a file rewritten in place changes its own
# entry, where the folder's mtime would not change.
Stamp = tuple[tuple[str, int, int, int], ...]


def stamp(folder: Path) -> Stamp:
    """What ``scan`` would find in ``folder``, cheaply (one stat a file, no reading)."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat()
                    found.append((entry.name, info.st_size, info.st_mtime_ns, info.st_ino))
    except OSError:
        return ()
    return tuple(sorted(found))


@dataclass(frozen=True)
class Index:
    """The files of a wheelhouse folder by project, as the server serves them."""

    projects: dict[str, list[IndexFile]]
    requires: tuple[str, ...] = ()  # meshtutor's own dependencies (names), from its wheel
    version: str | None = None  # meshtutor's version in the wheelhouse
    targets: tuple[str, ...] = ()  # "linux-x86_64, Python 3.11", … as the build reported

    def covered(self) -> str:
        """The build's targets in a line: "linux-x86_64, macos-arm64 with Python 3.11, 3.12"."""
        pythons: dict[str, list[str]] = {}
        for target in self.targets:
            platform, _, python = target.partition(", Python ")
            versions = pythons.setdefault(platform, [])
            if python not in versions:
                versions.append(python)
        groups: dict[tuple[str, ...], list[str]] = {}
        for platform, versions in pythons.items():
            groups.setdefault(tuple(versions), []).append(platform)
        return "; ".join(
            f"{', '.join(sorted(platforms))} with Python {', '.join(versions)}"
            for versions, platforms in groups.items()
        )

    @property
    def files(self) -> dict[str, IndexFile]:
        return {f.filename: f for files in self.projects.values() for f in files}

    @property
    def has_meshtutor(self) -> bool:
        return PROJECT in self.projects

    @property
    def missing(self) -> list[str]:
        """meshtutor's dependencies with no file here (empty: the index installs it alone)."""
        return [name for name in self.requires if normalize(name) not in self.projects]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wheel_metadata(path: Path) -> email.message.Message | None:
    try:
        with zipfile.ZipFile(path) as wheel:
            name = next(
                n
                for n in wheel.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            )
            return email.parser.BytesParser().parsebytes(wheel.read(name), headersonly=True)
    except (OSError, zipfile.BadZipFile, StopIteration, KeyError):
        return None


def scan(folder: Path, previous: Index | None = None) -> Index:
    """Read a wheelhouse folder (missing or empty: an empty index). Files whose names are not
    wheels or source archives are not served, nor files another user could have put there
    (see ``files.unsafe``; the server refuses to start with one, this covers a later one).
    A file of ``previous`` whose size, mtime and inode are unchanged keeps its sha256."""
    projects: dict[str, list[IndexFile]] = {}
    requires: tuple[str, ...] = ()
    version = None
    targets: tuple[str, ...] = ()
    if unsafe(folder) is not None:
        _log.error("wheelhouse %s: %s; nothing of it is served", folder, unsafe(folder))
        return Index({})
    known = previous.files if previous is not None else {}
    try:
        if unsafe(folder / TARGETS_FILE) is None:
            listed = json.loads((folder / TARGETS_FILE).read_text("utf-8"))["targets"]
            targets = tuple(str(t) for t in listed)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            match = _WHEEL.match(path.name) or _SDIST.match(path.name)
            try:
                info = path.stat()
            except OSError:
                continue
            if match is None or not path.is_file():
                continue
            why = unsafe(path)
            if why is not None:
                _log.error("wheelhouse: %s %s; not served", path, why)
                continue
            seen = (info.st_size, info.st_mtime_ns, info.st_ino)
            old = known.get(path.name)
            digest = old.sha256 if old is not None and old.seen == seen else _sha256(path)
            project = normalize(match["name"])
            metadata = _wheel_metadata(path) if path.suffix == ".whl" else None
            requires_python = metadata.get("Requires-Python") if metadata else None
            if project == PROJECT and metadata is not None:
                version = metadata.get("Version")
                requires = tuple(
                    re.split(r"[\s\[<>=!~;(]", line.strip(), maxsplit=1)[0]
                    for line in metadata.get_all("Requires-Dist") or ()
                    if "extra ==" not in line
                )
            projects.setdefault(project, []).append(
                IndexFile(project, path.name, digest, requires_python, path, seen)
            )
    return Index(projects, requires, version, targets)


def _page(title: str, links: Iterable[str]) -> str:
    body = "\n".join(links)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.0">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def root_page(index: Index) -> str:
    """``/simple/``: one link per project."""
    return _page(
        "Simple index",
        (f'<a href="/simple/{p}/">{html.escape(p)}</a><br>' for p in sorted(index.projects)),
    )


def project_page(index: Index, project: str) -> str:
    """``/simple/<project>/``: its files, each with its sha256 (pip checks it)."""
    links = []
    for info in index.projects[project]:
        requires = (
            f' data-requires-python="{html.escape(info.requires_python)}"'
            if info.requires_python
            else ""
        )
        links.append(
            f'<a href="/wheels/{html.escape(info.filename)}#sha256={info.sha256}"{requires}>'
            f"{html.escape(info.filename)}</a><br>"
        )
    return _page(f"Links for {project}", links)


def install_commands(index: Index, base_url: str, host: str) -> list[str]:
    """What the join page and the banner tell attendees to run ([] without meshtutor's wheel).
    Without the dependencies, they come from the public index and only meshtutor from the
    classroom: never both from one command, or a look-alike "meshtutor" published on the
    public index could win."""
    if not index.has_meshtutor:
        return []
    trusted = f"--trusted-host {host.strip('[]')}"
    own = f"pip install --index-url {base_url}/simple/ {trusted}"
    if not index.missing:
        return [f"{own} {PROJECT}"]
    requires = " ".join(f'"{r}"' for r in _requirement_specs(index))
    return [f"pip install {requires}", f"{own} --no-deps {PROJECT}=={index.version}"]


def _requirement_specs(index: Index) -> list[str]:
    metadata = _wheel_metadata(index.projects[PROJECT][-1].path)
    lines = metadata.get_all("Requires-Dist") if metadata else None
    return [line.split(";")[0].strip() for line in lines or () if "extra ==" not in line]


# --- building it ------------------------------------------------------------------------------


def _source_tree() -> Path | None:
    """meshtutor's project folder when it runs from one (a checkout, an editable install)."""
    import meshtutor

    root = Path(meshtutor.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text("utf-8")
    except OSError:
        return None
    return root if re.search(r'(?m)^name\s*=\s*"meshtutor"', text) else None


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def repack_installed(dest: Path) -> Path:
    """meshtutor's wheel rebuilt from the installed files (its RECORD) when no source tree is
    at hand: the package, its data and its .dist-info, without what pip adds at install time
    (INSTALLER, REQUESTED, direct_url.json), compiled files or the launcher scripts (pip
    makes those again from entry_points.txt)."""
    dist = importlib.metadata.distribution(PROJECT)
    files = dist.files
    if not files:
        raise WheelhouseError("the installed meshtutor lists no files (no RECORD)")
    info_dir = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    wheel_text = dist.read_text("WHEEL") or ""
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")
    ]
    if info_dir is None or not tags:
        raise WheelhouseError("the installed meshtutor has no .dist-info/WHEEL to repack")
    name = dist.metadata["Name"].replace("-", "_")
    target = dest / f"{name}-{dist.version}-{tags[0]}.whl"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    records = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in files:
            parts = file.parts
            if parts[0] == ".." or "__pycache__" in parts or file.suffix == ".pyc":
                continue
            if parts[0] == info_dir and len(parts) == 2 and parts[1] in skip:
                continue
            data = Path(str(dist.locate_file(file))).read_bytes()
            arcname = "/".join(parts)
            wheel.writestr(arcname, data)
            records.append(f"{arcname},{_record_hash(data)},{len(data)}")
        records.append(f"{info_dir}/RECORD,,")
        wheel.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return target


def build_own_wheel(dest: Path, run: Callable[[Sequence[str]], None] | None = None) -> Path:
    """meshtutor's wheel in ``dest``: built by pip from the source tree meshtutor runs from
    (offline when hatchling, its build backend, is installed; else pip fetches it), or
    repacked from the installed files."""
    dest.mkdir(mode=0o755, parents=True, exist_ok=True)
    root = _source_tree()
    if root is None:
        return repack_installed(dest)
    with tempfile.TemporaryDirectory(prefix="meshtutor-wheel-") as tmp:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp, str(root)]
        if importlib.util.find_spec("hatchling") is not None:
            command.insert(4, "--no-build-isolation")
        (run or _run)(command)
        built = sorted(Path(tmp).glob(f"{PROJECT}-*.whl"))
        if not built:
            raise WheelhouseError(f"pip wheel {root} made no meshtutor wheel")
        target = dest / built[-1].name
        shutil.move(built[-1], target)
    return target


def _run(command: Sequence[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise WheelhouseError(
            f"{' '.join(command[2:4])} failed: {lines[-1] if lines else result.returncode}"
        )


@dataclass(frozen=True)
class Target:
    """Wheels for one platform and Python version (``platform`` None: this machine)."""

    platform: str | None
    python: str | None

    @property
    def label(self) -> str:
        if self.platform is None:
            import platform

            here = f"{platform.system().lower()}-{platform.machine().lower()}"
            return f"{here}, Python {sys.version_info[0]}.{sys.version_info[1]}"
        return f"{self.platform}, Python {self.python}"

    def pip_command(self, wheel: Path, dest: Path) -> list[str]:
        pip = [sys.executable, "-m", "pip"]
        if self.platform is None:
            # pip wheel also builds any dependency published only as source, for this machine.
            return [*pip, "wheel", "--wheel-dir", str(dest), str(wheel)]
        command = [*pip, "download", "--dest", str(dest), "--only-binary=:all:"]
        for tag in PLATFORMS[self.platform]:
            command += ["--platform", tag]
        assert self.python is not None
        return [*command, "--python-version", self.python, "--implementation", "cp", str(wheel)]


def _owner_writes_only(dest: Path) -> None:
    """pip writes with the user's umask: under a common 002 the wheels come out
    group-writable, which ``classroom serve`` refuses (another user could swap them).
    The user's own files lose that bit (the folder itself is left as it is); anything else
    is left to the check."""
    me = os.geteuid() if hasattr(os, "geteuid") else None
    for path in dest.iterdir():
        with contextlib.suppress(OSError):
            info = path.lstat()
            if info.st_uid == me and not path.is_symlink():
                path.chmod(info.st_mode & 0o7755)


def targets(platforms: Sequence[str], pythons: Sequence[str]) -> list[Target]:
    """This machine first, then each platform × Python version."""
    return [Target(None, None)] + [Target(p, v) for p in platforms for v in pythons]


def build(
    dest: Path,
    wanted: Sequence[Target],
    *,
    dependencies: bool = True,
    report: Callable[[str], None] = print,
) -> Index:
    """Build the wheelhouse in ``dest``: meshtutor's wheel (replacing older ones), then the
    dependencies for each target. A target pip cannot serve (a dependency without a wheel
    for it) is reported and skipped; the others still count."""
    dest.mkdir(mode=0o755, parents=True, exist_ok=True)
    for old in dest.glob(f"{PROJECT}-*.whl"):
        old.unlink()
    wheel = build_own_wheel(dest)
    report(f"meshtutor: {wheel.name}")
    covered = []
    if dependencies:
        for target in wanted:
            try:
                _run(target.pip_command(wheel, dest))
            except WheelhouseError as exc:
                report(f"{target.label}: skipped ({exc})")
            else:
                report(f"{target.label}: ok")
                covered.append(target.label)
    # What the join page tells attendees: the platforms every dependency has wheels for.
    (dest / TARGETS_FILE).write_text(json.dumps({"targets": covered}, indent=1) + "\n")
    _owner_writes_only(dest)
    index = scan(dest)
    size = sum(f.path.stat().st_size for f in index.files.values())
    report(
        f"{len(index.files)} files, {size / 1e6:.1f} MB, {len(index.projects)} projects in {dest}"
    )
    return index

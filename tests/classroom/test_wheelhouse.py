"""The classroom serves the instructor's meshtutor wheel (and its dependencies) as a package
index, so attendees install meshtutor at a venue with no internet (issue 13, item 6). The
tests run the real pip against the server on loopback; the wheelhouse here holds meshtutor's
own wheel only (so pip runs with --no-deps), built from this source tree with hatchling."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from classroom_helpers import room, run_async, serve

from meshtutor.classroom import wheelhouse


@pytest.fixture(scope="module")
def own_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheelhouse.build_own_wheel(tmp_path_factory.mktemp("wheel"))


def _pip_env() -> dict[str, str]:
    """pip as an attendee's laptop runs it: no configured mirror, no local wheel folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


async def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pip",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_pip_env(),
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


def _stock(data: Path, wheel: Path) -> Path:
    folder = data / wheelhouse.FOLDER
    folder.mkdir(parents=True)
    shutil.copy(wheel, folder)
    return folder / wheel.name


@run_async
async def test_pip_installs_meshtutor_from_the_classroom(
    data: Path, tmp_path: Path, own_wheel: Path
) -> None:
    served = _stock(data, own_wheel)
    async with room(data) as r:
        index = f"{r.url}/simple/"
        common = ["--no-cache-dir", "--index-url", index, "--trusted-host", "127.0.0.1"]
        got = await _pip("download", *common, "--no-deps", "-d", str(tmp_path / "dl"), "meshtutor")
        assert got.returncode == 0, got.stderr
        downloaded = tmp_path / "dl" / own_wheel.name
        assert downloaded.read_bytes() == served.read_bytes()
        target = tmp_path / "site"
        got = await _pip("install", *common, "--no-deps", "--target", str(target), "meshtutor")
        assert got.returncode == 0, got.stderr
        assert (target / "meshtutor" / "classroom" / "server.py").is_file()
        assert (target / "meshtutor" / "_data" / "lessons").is_dir()  # the curriculum came too
        # The index itself: PEP 503 pages with the file's sha256, which pip checked.
        _, root = await r.call("GET", "/simple/")
        assert '<a href="/simple/meshtutor/">meshtutor</a>' in root
        _, page = await r.call("GET", "/simple/meshtutor/")
        digest = hashlib.sha256(served.read_bytes()).hexdigest()
        assert f'href="/wheels/{own_wheel.name}#sha256={digest}"' in page
        assert 'data-requires-python="&gt;=3.11"' in page
        async with r.http.get("/simple/MeshTutor/", allow_redirects=False) as response:
            assert response.status == 301 and response.headers["Location"] == "/simple/meshtutor/"


@run_async
async def test_the_index_serves_only_its_wheels(data: Path, own_wheel: Path) -> None:
    _stock(data, own_wheel)
    (data / wheelhouse.FOLDER / "notes.txt").write_text("not a package")
    async with room(data) as r:
        for path in (
            "/wheels/classroom.sqlite",
            "/wheels/notes.txt",
            "/wheels/..%2Fclassroom.sqlite",
            "/wheels/%2E%2E/classroom.sqlite",
            "/simple/no-such-project/",
        ):
            status, _ = await r.call("GET", path)
            assert status == 404, path
        status, _ = await r.call("POST", f"/wheels/{own_wheel.name}")
        assert status == 405  # read-only


@run_async
async def test_the_join_page_gives_the_command_that_works(data: Path, own_wheel: Path) -> None:
    async with room(data, public_host="10.9.8.7") as r:
        code = r.server.classroom.meta.join_code
        _, page = await r.call("GET", f"/j/{code}")
        assert "serves no wheelhouse" in page and "meshtutor classroom wheelhouse" in page
        assert "pip install meshtutor" not in page  # it is on no public index
        # Meshtutor's wheel without its dependencies: those from the public index first,
        # then meshtutor pinned, alone, from the classroom.
        _stock(data, own_wheel)
        _, page = await r.call("GET", f"/j/{code}")
        host = f"http://10.9.8.7:{r.server.port}"
        assert (
            f"--index-url {host}/simple/ --trusted-host 10.9.8.7 --no-deps meshtutor==0.1.0" in page
        )
        assert re.search(r"pip install &quot;aiohttp&gt;=[0-9.]+&quot; &quot;click&gt;=", page)
        assert "&quot;textual[syntax]&gt;=1.0&quot;" in page
        # A full wheelhouse (every dependency there): one command, nothing from outside.
        folder = data / wheelhouse.FOLDER
        for name in wheelhouse.scan(folder).requires:
            (folder / f"{name.replace('-', '_')}-1.0-py3-none-any.whl").write_bytes(b"PK")
        targets = [
            f"{p}, Python {v}" for p in ("macos-arm64", "win_amd64") for v in ("3.11", "3.12")
        ]
        (folder / wheelhouse.TARGETS_FILE).write_text(json.dumps({"targets": targets}))
        _, page = await r.call("GET", f"/j/{code}")
        assert (
            f"pip install --index-url {host}/simple/ --trusted-host 10.9.8.7 meshtutor</code>"
            in page
        )
        assert "macos-arm64, win_amd64 with Python 3.11, 3.12" in page
        assert "no internet needed" in page


def test_serve_prints_the_install_command(tmp_path: Path, own_wheel: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    shutil.copy(own_wheel, wheels)
    with serve("--wheelhouse", str(wheels), home=tmp_path) as served:
        assert "--no-deps meshtutor==0.1.0" in served.banner["Install"] or any(
            "--no-deps meshtutor==0.1.0" in v for v in served.banner.values()
        )
    with serve("--data", str(tmp_path / "empty"), home=tmp_path) as served:
        assert served.banner["Install"].startswith("no wheelhouse")


def test_an_installed_meshtutor_repacks_into_the_same_wheel(
    tmp_path: Path, own_wheel: Path
) -> None:
    """Installed from a wheel (no source tree), meshtutor's wheel is rebuilt from its files."""
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(own_wheel),
        ],
        check=True,
        capture_output=True,
        env=_pip_env(),
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; import meshtutor;"
            "from meshtutor.classroom.wheelhouse import build_own_wheel;"
            f"assert meshtutor.__file__.startswith({str(site)!r}), meshtutor.__file__;"
            f"print(build_own_wheel(Path({str(out)!r})).name)",
        ],
        capture_output=True,
        text=True,
        env={**_pip_env(), "PYTHONPATH": str(site)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == own_wheel.name
    with zipfile.ZipFile(own_wheel) as a, zipfile.ZipFile(out / own_wheel.name) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            if not name.endswith("/RECORD"):
                assert a.read(name) == b.read(name), name


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshtutor", "classroom", "wheelhouse", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_pip_env(), "MESHTUTOR_HOME": str(home)},
    )


def test_the_wheelhouse_command_builds_what_serve_offers(tmp_path: Path) -> None:
    """--no-deps: only meshtutor's own wheel (offline here: hatchling builds it); the full
    build downloads every dependency and is run by hand (figures in the issue note)."""
    result = _cli("--data", str(tmp_path / "room"), "--no-deps", home=tmp_path)
    assert result.returncode == 0, result.stderr
    built = list((tmp_path / "room" / wheelhouse.FOLDER).glob("meshtutor-*.whl"))
    assert len(built) == 1 and "Dependencies not in it: aiohttp" in result.stderr
    with serve("--data", str(tmp_path / "room"), home=tmp_path) as served:
        assert served.banner["Install"].startswith('pip install "aiohttp>=')


def test_wheelhouse_arguments_are_checked(tmp_path: Path) -> None:
    from meshtutor.commands.classroom import PLATFORM_CHOICES, PYTHON_CHOICES

    assert sorted(PLATFORM_CHOICES) == sorted(wheelhouse.PLATFORMS)
    assert PYTHON_CHOICES == wheelhouse.PYTHONS
    for args, what in ((["--python", "2"], "--python"), (["--platform", "amiga"], "--platform")):
        result = _cli(*args, home=tmp_path)
        assert result.returncode == 2 and what in result.stderr
        assert "Traceback" not in result.stderr


@run_async
async def test_a_wheel_rewritten_in_place_is_hashed_again(
    data: Path, own_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index is read again when any file changes, not only when the folder does: a wheel
    rewritten in place (same name, the folder's mtime unchanged) gets its new sha256, which
    pip checks. Requests arriving together scan the folder once, and a scan hashes only the
    files that changed."""
    served = _stock(data, own_wheel)
    folder = served.parent
    (folder / "other-1.0-py3-none-any.whl").write_bytes(b"another wheel")
    hashed: list[str] = []
    sha256 = wheelhouse._sha256

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return sha256(path)

    monkeypatch.setattr(wheelhouse, "_sha256", counting)
    async with room(data) as r:
        pages = await asyncio.gather(*(r.call("GET", "/simple/meshtutor/") for _ in range(20)))
        assert {status for status, _ in pages} == {200}
        assert sorted(hashed) == sorted([served.name, "other-1.0-py3-none-any.whl"])
        hashed.clear()
        stamp = folder.stat()
        content = served.read_bytes()
        with served.open("r+b") as file:  # in place: same inode, same folder
            file.seek(len(content) - 1)
            file.write(bytes([content[-1] ^ 0xFF]))
        os.utime(folder, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        _, page = await r.call("GET", "/simple/meshtutor/")
        assert f"#sha256={hashlib.sha256(served.read_bytes()).hexdigest()}" in page
        assert hashed == [served.name]  # the other wheel kept its hash

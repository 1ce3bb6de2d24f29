"""``meshtutor classroom serve --web`` as browsers use it: a real server subprocess, a real
HTTP client with a cookie jar for each browser, and textual-serve's own websocket protocol
driving real app processes (web_helpers.py). Chromium is not installed here, so textual.js
itself does not run; what it would send is what these tests send.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from classroom_helpers import machine, run_async
from textual_serve.download_manager import DownloadManager
from web_helpers import Browser, alive, closed, screen_shows, serve_web, wait_until_dead

from meshtutor.tui.web_server import SEAT_COOKIE, AttendeeProcess, SeatKey


def test_a_seat_cookie_is_signed_for_one_room(tmp_path: Path) -> None:
    key = SeatKey(tmp_path)
    cookie = key.seal("A" * 22, "Ada")
    assert key.open(cookie) == ("A" * 22, "Ada")
    assert SeatKey(tmp_path).open(cookie) == ("A" * 22, "Ada")  # the same room, restarted
    browser, _, issued, mac = cookie.split(".")
    other_name = ".".join([browser, "Qm9i", issued, mac])  # "Bob"
    assert key.open(other_name) is None
    (tmp_path / "other").mkdir()
    assert SeatKey(tmp_path / "other").open(cookie) is None  # another room's key
    assert key.open("../../etc.x.y") is None and key.open(None) is None
    assert (tmp_path / "seat.key").stat().st_mode & 0o777 == 0o600


@run_async
async def test_a_browser_names_itself_and_a_reload_is_the_same_attendee(tmp_path: Path) -> None:
    """A page load costs nothing until a name and the code are given; the app then joins
    under that name, a reload (or a second tab) replaces the app without a new guest, and
    past the cap (here 1) a page load gets a page saying so and no process."""
    room = serve_web(tmp_path, "--web-sessions", "1")
    ada, bob = Browser(room), Browser(room)
    try:
        status, page = await ada.get(room.link)
        assert status == 200 and 'name="name"' in page and f'value="{room.code}"' in page
        assert "textual.js" not in page and room.apps() == []

        status, page = await ada.join("Ada Lovelace", "ABCDEF")
        assert status == 403 and "is not this classroom" in page
        status, page = await ada.join("  ", room.code)
        assert status == 400 and "name must not be empty" in page
        status, page = await ada.join("Ada Lovelace", room.code.lower())
        assert status == 200 and "textual.js" in page  # redirected to the app's page
        # Every asset of the app's page comes from this server (offline rooms).
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        local = [a for a in assets if a.startswith(room.web)]
        assert {a.rsplit("/", 1)[1] for a in local} >= {"textual.js", "xterm.css"}
        for asset in local:
            assert (await ada.get(asset))[0] == 200
        assert room.apps() == []  # still no process: the page's websocket starts it

        first = await ada.open_app()
        await screen_shows(first, "joined the classroom as Ada Lovelace")
        apps = room.apps()
        assert apps and await room.names() == ["Ada Lovelace"]

        # The room is full: another browser gets a page saying so, and no process.
        status, page = await bob.get()
        assert status == 503 and "browser seats are taken" in page
        assert (await bob.join("Bob", room.code))[0] == 503  # seated, but no free seat
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await bob.open_app()
        assert refused.value.status == 503
        assert set(room.apps()) == set(apps)

        # A reload: the page's websocket closes, a new one opens with the same cookie.
        await first.close()
        second = await ada.open_app()
        await screen_shows(second, "joined the classroom as Ada Lovelace")
        assert wait_until_dead(apps, 5) == []
        # A second tab: the first tab's app ends (one app per browser, one home).
        third = await ada.open_app()
        assert await closed(second)
        await screen_shows(third, "joined the classroom as Ada Lovelace")
        assert await room.names() == ["Ada Lovelace"]  # one attendee all along, no guest
        homes = [p for p in (tmp_path / "classroom" / "web").iterdir() if p.is_dir()]
        assert len(homes) == 1 and (homes[0] / "classroom.sqlite").exists()
    finally:
        await ada.close()
        await bob.close()
        room.stop()


@run_async
async def test_a_killed_server_leaves_no_app_behind(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup in the server: each app dies with it (PR_SET_PDEATHSIG)
    instead of living on under PID 1 with its sandbox's listeners open."""
    room = serve_web(tmp_path)
    ada = Browser(room)
    apps: list[int] = []
    try:
        await ada.join("Ada", room.code)
        ws = await ada.open_app()
        await screen_shows(ws, "joined the classroom as Ada")
        apps = room.apps()
        assert apps
        room.process.kill()
        room.process.wait(timeout=10)
        assert wait_until_dead(apps, 5) == []
    finally:
        await ada.close()
        room.stop()
        for pid in apps:  # what a failed test would leave behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@run_async
async def test_sigterm_with_sessions_open_exits_promptly(tmp_path: Path) -> None:
    """Each app gets SIGTERM and one second before its process group is killed, all at
    once (bench/classroom_web.py prints the time it takes; it used to be 15-18 s)."""
    room = serve_web(tmp_path)
    browsers = [Browser(room), Browser(room)]
    try:
        sockets: list[Any] = []
        for name, browser in zip(("Ada", "Bob"), browsers, strict=True):
            await browser.join(name, room.code)
            sockets.append(await browser.open_app())
        for name, ws in zip(("Ada", "Bob"), sockets, strict=True):
            await screen_shows(ws, f"joined the classroom as {name}")
        apps = room.apps()
        room.process.send_signal(signal.SIGTERM)
        out, _ = room.process.communicate(timeout=10)
        assert room.process.returncode == 0
        assert "Classroom stopped" in out
        assert [p for p in apps if alive(p)] == []
    finally:
        for browser in browsers:
            await browser.close()
        room.stop()


async def api_join(http: aiohttp.ClientSession, code: str, name: str) -> int:
    async with http.post("/api/join", json={"code": code, "name": name}) as response:
        return response.status


@run_async
async def test_wrong_codes_count_on_both_ports_together(tmp_path: Path) -> None:
    """The web form compares codes under the classroom's own guard: wrong codes on the form
    and on /api/join add up per client address, and the lockout holds on both ports (the web
    form had its own counter, and loopback, where every app joins from, was exempt)."""
    room = serve_web(tmp_path)
    eve = Browser(room, "127.0.0.71")
    try:
        for _ in range(5):
            assert (await eve.join("Eve", "AAAA-AAAA"))[0] == 403
        async with machine(room.api, "127.0.0.71") as api:
            for _ in range(4):
                assert await api_join(api, "AAAAAAAA", "Eve") == 403
            status, page = await eve.join("Eve", "BBBB-BBBB")  # the tenth wrong code
            assert status == 429 and "Too many wrong join codes" in page
            # Locked out on both ports, even with the right code.
            assert await api_join(api, room.code, "Eve") == 429
        status, page = await eve.join("Eve", room.code)
        assert status == 429 and "Too many wrong join codes" in page
        # Loopback, where the apps join from, is limited like any browser on the web port.
        local = Browser(room, "127.0.0.1")
        try:
            statuses = [(await local.join("Lo", "CCCC-CCCC"))[0] for _ in range(10)]
            assert statuses == [403] * 9 + [429]
        finally:
            await local.close()
        assert room.apps() == []
    finally:
        await eve.close()
        room.stop()


@run_async
async def test_malformed_join_forms_are_refused_without_a_traceback(tmp_path: Path) -> None:
    """POST /join takes the form as a browser sends it; anything else is a 4xx page (a
    multipart body without names, or bytes that are not UTF-8, were a 500 and a traceback)."""
    room = serve_web(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            for content_type, body, status in (
                ("multipart/form-data", b"garbage", 415),
                (
                    "multipart/form-data; boundary=x",
                    b"--x\r\nContent-Disposition: form-data\r\n\r\nzz\r\n--x--\r\n",
                    415,
                ),
                ("application/x-www-form-urlencoded", b"name=%ff%fe&code=\xff", 400),
                ("text/plain", b"name=Eve", 415),
            ):
                headers = {"Content-Type": content_type}
                async with http.post(room.web + "/join", data=body, headers=headers) as response:
                    assert response.status == status, (content_type, body)
                    assert 'name="name"' in await response.text()
        assert room.apps() == []
    finally:
        err = room.stop()
    assert "Traceback" not in err, err[:3000]


@run_async
async def test_new_browsers_take_joins_from_their_own_address(tmp_path: Path) -> None:
    """Each new browser becomes a new attendee (its app joins from this machine, which the
    classroom trusts): the browser's own address takes the join, so one machine looping on
    POST /join with the code cannot seat the whole room; another machine still gets in, and
    a browser that already has its seat renames itself without taking another."""
    room = serve_web(tmp_path)
    browsers = [Browser(room, "127.0.0.72") for _ in range(11)]
    other = Browser(room, "127.0.0.73")
    try:
        statuses = [(await b.join(f"bot {i}", room.code))[0] for i, b in enumerate(browsers)]
        assert statuses == [200] * 10 + [429], statuses
        _, page = await browsers[-1].get()
        assert 'name="name"' in page  # no seat: the form again
        assert (await browsers[0].join("renamed", room.code))[0] == 200  # its own seat
        assert (await other.join("Ada", room.code))[0] == 200
        assert room.apps() == []
    finally:
        for browser in (*browsers, other):
            await browser.close()
        room.stop()


@run_async
async def test_a_room_keeps_one_browser_home_per_seat(tmp_path: Path) -> None:
    """Browsers' homes (DATA/web/<id>) are kept at most one per seat (500): past that a new
    browser gets a page saying so and no home, so new browser ids cannot fill the disk."""
    homes = tmp_path / "classroom" / "web"
    homes.mkdir(parents=True, mode=0o700)
    (tmp_path / "classroom").chmod(0o700)
    for i in range(500):
        (homes / f"{i:022d}").mkdir(mode=0o700)
    room = serve_web(tmp_path)
    browser = Browser(room, "127.0.0.74")
    try:
        status, page = await browser.join("Ada", room.code)
        assert status == 503 and "taken its 500 browser attendees" in page
        assert len([p for p in homes.iterdir() if p.is_dir()]) == 500
        assert room.apps() == []
    finally:
        await browser.close()
        room.stop()


@run_async
async def test_apps_of_a_server_on_a_lan_address_are_not_limited_as_one_client(
    tmp_path: Path,
) -> None:
    """``serve --host <LAN address> --web``: the apps join from that address (the server's
    own), not loopback. Each browser took its join on the web port already, so the apps are
    not limited as one client there: twelve of them join (the eleventh used to get 429),
    while any other address keeps its limit."""
    room = serve_web(tmp_path, "--host", "127.0.0.7")
    try:
        assert room.api.startswith("http://127.0.0.7:")
        async with machine(room.api, "127.0.0.7") as apps:  # where the apps connect from
            statuses = [await api_join(apps, room.code, f"browser {i}") for i in range(12)]
        assert statuses == [200] * 12
        async with machine(room.api, "127.0.0.8") as laptop:
            statuses = [await api_join(laptop, room.code, f"bot {i}") for i in range(11)]
        assert statuses == [200] * 10 + [429]
    finally:
        room.stop()


@run_async
async def test_a_new_join_code_reaches_the_browser_link(tmp_path: Path) -> None:
    """After the instructor makes a new join code, the web form takes the new code and
    refuses the old one, the browser link shown to the instructor carries the new one, and
    an app started then joins with it."""
    room = serve_web(tmp_path)
    ada = Browser(room, "127.0.0.75")
    try:
        async with aiohttp.ClientSession(room.api) as http:
            headers = {"Authorization": f"Bearer {room.token}"}
            async with http.post("/api/join-code", json={}, headers=headers) as response:
                made = await response.json()
            async with http.get("/api/room", headers=headers) as response:
                grid = await response.json()
            async with http.get(f"/j/{made['join_code']}") as response:
                page = await response.text()
        assert grid["browser_url"] == f"{room.web}/?code={made['shown']}"
        assert grid["browser_url"] in page  # the join page offers the browser too
        assert (await ada.join("Ada", room.code))[0] == 403  # the printed, old code
        assert (await ada.join("Ada", made["shown"]))[0] == 200
        ws = await ada.open_app()
        await screen_shows(ws, "joined the classroom as Ada")
        assert await room.names() == ["Ada"]
    finally:
        await ada.close()
        room.stop()


@run_async
async def test_malformed_messages_end_a_session_with_one_line(tmp_path: Path) -> None:
    """What textual.js never sends ends that session: no traceback in the server's log, one
    line for the lot (it used to log a traceback each: IndexError, AttributeError,
    RecursionError), and the server keeps serving."""
    room = serve_web(tmp_path)
    ada = Browser(room, "127.0.0.76")
    try:
        await ada.join("Ada", room.code)
        for message in ('["resize"]', '["stdin", 5]', "[" * 5000 + "]" * 5000, "[]"):
            ws = await ada.open_app()
            await ws.send_str(message)
            assert await closed(ws, 20), message
        ws = await ada.open_app()
        await screen_shows(ws, "joined the classroom as Ada")
    finally:
        await ada.close()
        err = room.stop()
    assert "Traceback" not in err, err[:3000]
    lines = [line for line in err.splitlines() if "--web:" in line]
    assert len(lines) == 1 and "protocol" in lines[0], err[:3000]


@run_async
async def test_a_huge_resize_is_clamped(tmp_path: Path) -> None:
    """textual-serve passes a browser's resize on as is: a billion columns reached the app.
    It is clamped as the initial size is (1000 at most), and the app keeps drawing."""
    room = serve_web(tmp_path)
    ada = Browser(room, "127.0.0.77")
    try:
        await ada.join("Ada", room.code)
        ws = await ada.open_app()
        await screen_shows(ws, "joined the classroom as Ada")
        await ws.send_json(["resize", {"width": 1e9, "height": 10**9}])
        # Let the app take that size before the next one (it draws the latest only): an app
        # given a billion columns grew past 2 GB in 15 s and drew nothing more.
        await asyncio.sleep(2)
        await ws.send_json(["resize", {"width": 90, "height": 28}])
        await ws.send_str('["stdin", "\\u0010"]')  # ctrl+p: the command palette redraws
        await screen_shows(ws, "Search for commands", timeout=30)
    finally:
        await ada.close()
        room.stop()


def test_an_empty_seat_key_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    """An older meshtutor crashing between creating the key file and writing it left it
    empty, and --web then refused to start. The key is written under another name and linked
    into place now; an empty one (which signed nothing) is replaced."""
    (tmp_path / "seat.key").write_bytes(b"")
    (tmp_path / "seat.key").chmod(0o600)
    key = SeatKey(tmp_path)
    assert len((tmp_path / "seat.key").read_bytes()) == 32
    assert key.open(key.seal("A" * 22, "Ada")) == ("A" * 22, "Ada")
    assert [p.name for p in tmp_path.iterdir()] == ["seat.key"]  # no temporary left


def test_servers_starting_together_agree_on_one_seat_key(tmp_path: Path) -> None:
    """Eight processes make the key at once: none sees a half-written one, all get one key."""
    code = (
        "import sys; from pathlib import Path; from meshtutor.tui.web_server import SeatKey; "
        "k = SeatKey(Path(sys.argv[1])); print(k._key.hex())"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [run.communicate(timeout=60) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in results]
    assert len({out for out, _ in results}) == 1


def _at(moment: float) -> Callable[[], float]:
    return lambda: moment


def test_a_seat_cookie_expires_after_a_workshop_week(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    day = 86400
    key = SeatKey(tmp_path, clock=lambda: now)
    for age, accepted in ((0, True), (6 * day, True), (7 * day + 1, False), (-3600, False)):
        issued = SeatKey(tmp_path, clock=_at(now - age)).seal("B" * 22, "Bob")
        assert (key.open(issued) is not None) == accepted, age
    browser, name, issued, mac = key.seal("B" * 22, "Bob").split(".")
    later = str(int(issued) + 5 * day)  # a cookie's issue time cannot be moved
    assert key.open(".".join([browser, name, later, mac])) is None


@run_async
async def test_an_old_seat_cookie_seats_no_browser(tmp_path: Path) -> None:
    """A seat cookie signed by the room's own key, issued eight days ago: the server offers
    the form again and starts no app for it."""
    room = serve_web(tmp_path)
    try:
        key = SeatKey(tmp_path / "classroom" / "web", clock=lambda: time.time() - 8 * 86400)
        cookie = {SEAT_COOKIE: key.seal("C" * 22, "Cy")}
        async with aiohttp.ClientSession(cookies=cookie) as http:
            async with http.get(room.web + "/") as response:
                assert 'name="name"' in await response.text()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(room.web.replace("http", "ws", 1) + "/ws")
            assert refused.value.status == 403
        assert room.apps() == []
    finally:
        room.stop()


LEADER = """
import signal, subprocess, sys, time
from pathlib import Path
child = subprocess.Popen(["sleep", "60"])  # in the app's process group, like a curl probe
Path(sys.argv[1]).write_text(str(child.pid))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the leader exits at once, alone
time.sleep(60)
"""


@run_async
async def test_an_apps_group_is_killed_before_the_app_is_reaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending a session kills the app's whole process group, and does so while the app's
    id still names that group: the app (exited at SIGTERM, leaving a child behind) is a
    zombie when the group gets SIGKILL, and is reaped only after (killing the group after
    the reap could reach another group that reused the id)."""
    signals: list[tuple[int, str]] = []
    killpg = os.killpg

    def recording(pgid: int, signum: int) -> None:
        try:
            state = Path(f"/proc/{pgid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "reaped"
        signals.append((signum, state))
        killpg(pgid, signum)

    monkeypatch.setattr(os, "killpg", recording)
    manager = DownloadManager()

    async def nothing(*_: Any) -> None:
        return None

    pid_file = tmp_path / "grandchild"
    service = AttendeeProcess(
        [sys.executable, "-c", LEADER, str(pid_file)],
        tmp_path,
        write_bytes=nothing,
        write_str=nothing,
        close=nothing,
        download_manager=manager,
    )
    await service.start(80, 24)
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.1)
    grandchild = int(pid_file.read_text())
    await service.end()
    assert [s for s, _ in signals] == [signal.SIGTERM, signal.SIGKILL]
    assert signals[1][1] == "Z", signals  # a zombie, not yet reaped
    assert wait_until_dead([grandchild], 5) == []

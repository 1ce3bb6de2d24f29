"""``meshtutor classroom serve --web`` as browsers use it: a real server subprocess, a real
HTTP client with a cookie jar for each browser, and textual-serve's own websocket protocol
driving real app processes (web_helpers.py). Chromium is not installed here, so textual.js
itself does not run; what it would send is what these tests send.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from classroom_helpers import run_async
from web_helpers import Browser, alive, closed, screen_shows, serve_web, wait_until_dead

from meshtutor.tui.web_server import SeatKey


def test_a_seat_cookie_is_signed_for_one_room(tmp_path: Path) -> None:
    key = SeatKey(tmp_path)
    cookie = key.seal("A" * 22, "Ada")
    assert key.open(cookie) == ("A" * 22, "Ada")
    assert SeatKey(tmp_path).open(cookie) == ("A" * 22, "Ada")  # the same room, restarted
    browser, _, mac = cookie.split(".")
    other_name = ".".join([browser, "Qm9i", mac])  # "Bob"
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


@run_async
async def test_wrong_join_codes_lock_the_address_out(tmp_path: Path) -> None:
    room = serve_web(tmp_path)
    browser = Browser(room)
    try:
        for _ in range(5):
            assert (await browser.join("Eve", "AAAAAA"))[0] == 403
        status, page = await browser.join("Eve", room.code)  # even the right code, for now
        assert status == 429 and "wait a minute" in page
        assert room.apps() == []
    finally:
        await browser.close()
        room.stop()

"""The volume server's journal rounds (`-fsync=group`) sync in the background through io_uring
while it serves (the event loop watches each journal's eventfd), inline once it stops, and
inline throughout where the kernel refuses io_uring."""

from __future__ import annotations

import asyncio
import errno
import os
import threading

import pytest

from seaweed_py.storage.journal import Journal
from seaweed_py.storage.uring import AsyncSync
from seaweed_py.volume import VolumeServer
from tests import volume_harness
from tests.uring_kernel import needs_io_uring, refuse_io_uring

Session = volume_harness.Session
Starter = volume_harness.Starter
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http

VOLUMES = (1, 2, 3)


def fid(vid: int, key: int) -> str:
    return f"{vid},{key:x}637037d6"


def blob(vid: int, key: int) -> bytes:
    return b"%d/%d:" % (vid, key) + bytes((vid * key + i) % 256 for i in range(key * 37))


async def write_all(http: Session, server: VolumeServer, keys: range) -> None:
    """Concurrent writes over every volume (one round takes many), each answered 201."""

    async def one(vid: int, key: int) -> int:
        async with http.post(
            volume_harness.url(server, f"/{fid(vid, key)}"), data=blob(vid, key)
        ) as resp:
            return resp.status

    statuses = await asyncio.gather(*(one(vid, key) for vid in VOLUMES for key in keys))
    assert statuses == [201] * len(statuses)


async def read_all(http: Session, server: VolumeServer, keys: range) -> None:
    for vid in VOLUMES:
        for key in keys:
            status, _, body = await volume_harness.get(
                http, volume_harness.url(server, f"/{fid(vid, key)}")
            )
            assert (status, body) == (200, blob(vid, key)), fid(vid, key)


class JournalSyncs:
    """Inline fdatasyncs of the journals' files, by thread, and submits to a ring."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.journal_fds: set[int] = set()
        self.inline_threads: list[int] = []
        self.submits = 0
        real_sync, real_submit = os.fdatasync, AsyncSync.submit

        def fdatasync(fd: int) -> None:
            if fd in self.journal_fds:
                self.inline_threads.append(threading.get_ident())
            real_sync(fd)

        def submit(ring: AsyncSync, fd: int, token: int) -> None:
            real_submit(ring, fd, token)
            self.submits += 1

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        monkeypatch.setattr(AsyncSync, "submit", submit)


def the_journal(server: VolumeServer) -> Journal:
    (journal,) = server.store.journals
    assert journal is not None
    return journal


@needs_io_uring
async def test_rounds_sync_in_the_background_while_serving_and_inline_after_stop(
    start_server: Starter, http: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While it serves, the loop never syncs the journal itself: every round goes to the
    ring, and the writes are acknowledged from the completions. Stopped, the server has let
    its ring go; started again on the directory, it serves every write, in the background
    again."""
    syncs = JournalSyncs(monkeypatch)
    server = await start_server()
    journal = the_journal(server)
    syncs.journal_fds.add(journal._fd)
    assert journal.background_fd is not None
    for vid in VOLUMES:
        await volume_harness.allocate(http, server, vid)
    before = journal.syncs
    await write_all(http, server, range(1, 41))
    rounds = journal.syncs - before
    assert 0 < rounds <= syncs.submits
    assert threading.get_ident() not in syncs.inline_threads  # the loop's thread
    await read_all(http, server, range(1, 41))

    await server.stop()
    assert journal.background_fd is None
    assert journal._background is None
    again = await start_server()
    assert the_journal(again).background_fd is not None
    await read_all(http, again, range(1, 41))


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS], ids=["EPERM", "ENOSYS"])
async def test_a_kernel_without_io_uring_serves_with_inline_rounds(
    start_server: Starter, http: Session, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    refuse_io_uring(monkeypatch, err)
    syncs = JournalSyncs(monkeypatch)
    server = await start_server()
    journal = the_journal(server)
    syncs.journal_fds.add(journal._fd)
    assert journal.background_fd is None
    for vid in VOLUMES:
        await volume_harness.allocate(http, server, vid)
    await write_all(http, server, range(1, 21))
    await read_all(http, server, range(1, 21))
    assert syncs.submits == 0
    assert threading.get_ident() in syncs.inline_threads  # the rounds ran on the loop

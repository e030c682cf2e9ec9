"""How fast can compare.py's write load go in pure Python at all?

This is a floor experiment, not weedpy: a deliberately minimal server that does only the work
no volume server can skip for compare.py's write request (a 1 KiB multipart POST to a new fid).
It parses HTTP with httptools on uvloop, cuts the part's data out of the body, gzips it with
ISA-L as the reference does (spec §15.1), packs a version-3 needle record, appends it to a file
with one write, remembers its offset in a dict, and answers 201 with the JSON. It does no
checks, no `.idx`, no fsync, no replication and no metrics. Whatever rate it reaches is more than
any pure-Python volume server can reach with the same number of processes here.

    python -m bench.write_floor                 # one process, 10 s of wrk -c16
    python -m bench.write_floor --procs 2       # two processes sharing the port (SO_REUSEPORT)

It prints requests per second and the servers' CPU per request; compare.py in the same session
gives the reference's write rate. Needs wrk and ../shared/bench/lua/write.lua.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

WRITE_LUA = Path(__file__).resolve().parents[2] / "shared" / "bench" / "lua" / "write.lua"
_HZ = os.sysconf("SC_CLK_TCK")
_HEADER = struct.Struct(">IQII")  # cookie, key, size; then the v3 body's DataSize
_TAIL = struct.Struct(">BIQ")  # flags, CRC, AppendAtNs


def serve(port: int, directory: str) -> None:
    import httptools
    import uvloop
    from crc32c import crc32c
    from isal import isal_zlib

    fd = -1  # opened once listening: the file tells the parent this server is ready
    index: dict[int, tuple[int, int]] = {}
    end = 0

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.content_type = b""
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() == b"content-type":
                self.content_type = value

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            nonlocal end
            body = b"".join(self.body)
            self.body.clear()
            boundary = self.content_type[self.content_type.find(b"boundary=") + 9 :]
            start = body.find(b"\r\n\r\n") + 4
            data = body[start : body.find(b"\r\n--" + boundary, start)]
            packed = isal_zlib.compress(data, 1, wbits=31)
            flags = 0
            if len(packed) * 10 < len(data) * 9:
                data, flags = packed, 1
            fid = self.url[1:].split(b"_")[0].split(b",")[1]
            key = int(fid[:-8], 16) + int(self.url.rpartition(b"_")[2] or b"0")
            crc = crc32c(data)
            record = (
                _HEADER.pack(int(fid[-8:], 16), key, len(data) + 5, len(data))
                + data
                + _TAIL.pack(flags, crc, time.time_ns())
            )
            record += b"\0" * (-len(record) % 8)
            os.write(fd, record)
            index[key] = (end, len(data) + 5)
            end += len(record)
            answer = b'{"name":"bench.bin","size":%d,"eTag":"%08x"}' % (len(data), crc)
            self.transport.write(
                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )

    async def main() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        nonlocal fd
        fd = os.open(
            os.path.join(directory, f"floor-{os.getpid()}.dat"),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        server = await asyncio.get_running_loop().create_server(Protocol, sock=sock)
        await server.serve_forever()

    uvloop.run(main())


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve is not None:
        serve(a.serve, a.dir)
        return 0
    if not shutil.which("wrk") or not WRITE_LUA.exists():
        print(f"needs wrk and {WRITE_LUA}", file=sys.stderr)
        return 2
    # Hold the port (SO_REUSEPORT, never listening) while the servers bind it.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="write-floor-") as directory:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.write_floor",
                    "--serve",
                    str(port),
                    "--dir",
                    directory,
                ],
                cwd=Path(__file__).resolve().parents[1],
            )
            for _ in range(a.procs)
        ]
        try:
            deadline = time.monotonic() + 20
            while sum(1 for f in os.listdir(directory) if f.endswith(".dat")) < a.procs:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    print("the floor servers did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            holder.close()
            before = sum(cpu_ticks(p.pid) for p in procs)
            out = subprocess.run(
                [
                    "wrk",
                    "-t1",
                    f"-c{a.conns}",
                    f"-d{a.duration}s",
                    "-s",
                    str(WRITE_LUA),
                    f"http://127.0.0.1:{port}",
                    "--",
                    "3,0100000000",
                    "1024",
                ],
                capture_output=True,
                text=True,
                timeout=a.duration + 60,
                check=True,
            ).stdout
            cpu = (sum(cpu_ticks(p.pid) for p in procs) - before) / _HZ
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None or not int(count.group(1)):
        print(f"no request was answered:\n{out}", file=sys.stderr)
        return 1
    rps, total = float(rate.group(1)), int(count.group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    print(
        f"write floor, {a.procs} process(es), wrk -c{a.conns} {a.duration}s: {rps:,.0f} req/s, "
        f"server CPU {cpu / total * 1e6:.1f} us/request"
        + (f", {bad.group(1)} non-2xx" if bad else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

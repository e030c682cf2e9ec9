"""`weedpy upload`: assign file ids and upload files, like `weed upload`.

The files named on the command line share one assign of `count = number of files`, so file i is
stored under `<fid>_i` (consecutive keys, spec §1.3); files under `-dir` each get their own
assign. A file larger than `-maxMB` MiB is split into chunks uploaded in parallel, with a chunk
manifest at the file's fid (spec §13). With `-json` the output is the one line of JSON that
`weed upload` prints, `[{"fileName":...,"url":...,"fid":...,"size":...}]`; otherwise one
`<fid><TAB><file>` line per file. Exit status 1 if any file failed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import mimetypes
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seaweed_py.cli.secure import add_config_dir_flag, client_options, load_security
from seaweed_py.client import AsyncClient
from seaweed_py.client.progress import ProgressBar
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.errors import WeedError

__all__ = ["build_flags", "run"]

_PARALLEL_FILES = 8


def build_flags() -> FlagSet:
    flags = FlagSet(
        "upload",
        "Upload files (or every file under -dir) and print their file ids.",
        "FILE...",
    )
    flags.add("master", "localhost:9333", "master address host:port (comma-separated for several)")
    flags.add(
        "maxMB",
        4,
        "split files larger than this many MiB into chunks plus a chunk manifest; 0 never splits",
    )
    flags.add("collection", "", "collection to store the files in")
    flags.add("replication", "", "replica placement code xyz, e.g. 001 (default: the master's)")
    flags.add("ttl", "", "time to live, e.g. 3m, 1h, 1d, 1w, 1M, 1y")
    flags.add("dataCenter", "", "store the files in this data center")
    flags.add("rack", "", "store the files in this rack")
    flags.add("disk", "", "disk type: hdd, ssd or a tag")
    flags.add("dir", "", "upload every file under this folder, recursively, each with its own fid")
    flags.add("include", "", "with -dir: only files whose name matches this pattern, e.g. *.pdf")
    flags.add("usePublicUrl", False, "upload to the volume servers' public URLs")
    flags.add("json", False, "print the result as one line of JSON, like weed upload")
    flags.add("progress", True, "draw a progress bar on a terminal for files above -maxMB")
    add_config_dir_flag(flags)
    return flags


@dataclass
class _Outcome:
    path: Path
    fid: str = ""
    url: str = ""
    size: int = 0
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        # Field order and omission as in weed's SubmitResult (`omitempty` everywhere).
        obj: dict[str, Any] = {"fileName": self.path.name}
        if self.url:
            obj["url"] = self.url
        if self.fid:
            obj["fid"] = self.fid
        if self.size:
            obj["size"] = self.size
        if self.error:
            obj["error"] = self.error
        return obj


def run(argv: Sequence[str]) -> int:
    flags = build_flags()
    opts, files = flags.parse(argv)
    if not files and not opts["dir"]:
        raise UsageError(f"no files to upload\n\n{flags.usage()}")
    if opts["maxMB"] < 0:
        raise UsageError("-maxMB must be 0 or positive")
    listed = [Path(f) for f in files]
    for path in listed:
        _check_uploadable(path)
    walked = _walk(Path(opts["dir"]), opts["include"]) if opts["dir"] else []
    _, security = load_security(opts)
    opts["master"], opts["ssl"] = client_options(security, opts["master"])
    outcomes = asyncio.run(_upload_all(opts, listed, walked))
    if opts["json"]:
        print(
            json.dumps([o.as_json() for o in outcomes], separators=(",", ":"), ensure_ascii=False)
        )
    for outcome in outcomes:
        if outcome.error:
            print(f"weedpy upload: {outcome.path}: {outcome.error}", file=sys.stderr)
        elif not opts["json"]:
            print(f"{outcome.fid}\t{outcome.path}")
    return 1 if any(o.error for o in outcomes) else 0


def _check_uploadable(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory (-dir uploads every file under one)")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied")


def _walk(root: Path, include: str) -> list[Path]:
    if not root.is_dir():
        raise UsageError(f"-dir is not a directory: {root}")
    found = []
    for folder, _, names in os.walk(root):
        found += [
            Path(folder, n) for n in sorted(names) if not include or fnmatch.fnmatch(n, include)
        ]
    return [p for p in found if p.is_file()]


async def _upload_all(
    opts: dict[str, Any], listed: list[Path], walked: list[Path]
) -> list[_Outcome]:
    chunk_size = opts["maxMB"] * 1024 * 1024 or None
    placement = {
        "collection": opts["collection"],
        "replication": opts["replication"],
        "ttl": opts["ttl"],
        "data_center": opts["dataCenter"],
    }
    sizes = [p.stat().st_size for p in [*listed, *walked]]
    bar = ProgressBar(
        f"uploading {len(sizes)} file(s)",
        sys.stderr,
        enabled=opts["progress"]
        and sys.stderr.isatty()
        and chunk_size is not None
        and max(sizes, default=0) > chunk_size,
    )
    slots = asyncio.Semaphore(_PARALLEL_FILES)
    total = sum(sizes)

    def progress(delta: int, _total: int | None) -> None:
        bar.update(delta, total)

    async with AsyncClient(
        opts["master"],
        chunk_size=chunk_size,
        use_public_url=opts["usePublicUrl"],
        ssl=opts["ssl"],
    ) as client:

        async def one(
            path: Path, fid: str | None, url: str, auth: str, public_url: str = ""
        ) -> _Outcome:
            outcome = _Outcome(path)
            async with slots:
                try:
                    meta: dict[str, Any] = {
                        "name": path.name,
                        "mime": mimetypes.guess_type(path.name)[0] or "",
                        "ts": int(path.stat().st_mtime),
                        "progress": progress,
                        **placement,
                    }
                    if fid is None:
                        result = await client.upload(
                            path, rack=opts["rack"], disk=opts["disk"], **meta
                        )
                    else:
                        result = await client.write(fid, path, url=url, auth=auth, **meta)
                except (WeedError, OSError) as exc:
                    outcome.error = str(exc)
                    return outcome
            outcome.fid, outcome.size = result.fid, result.size
            # Like weed: `<publicUrl>/<fid>`, without a scheme.
            outcome.url = f"{public_url}/{result.fid}" if public_url else result.url
            return outcome

        try:
            jobs = []
            if listed:
                try:
                    assignment = await client.assign(
                        len(listed),
                        rack=opts["rack"],
                        disk=opts["disk"],
                        **placement,
                    )
                except WeedError as exc:
                    failed = [_Outcome(p, error=str(exc)) for p in listed]
                    return failed + list(
                        await asyncio.gather(*(one(p, None, "", "") for p in walked))
                    )
                url = assignment.public_url if opts["usePublicUrl"] else assignment.url
                jobs += [
                    one(p, f, url, assignment.auth, assignment.public_url)
                    for p, f in zip(listed, assignment.fids, strict=True)
                ]
            jobs += [one(p, None, "", "") for p in walked]
            return list(await asyncio.gather(*jobs))
        finally:
            bar.close()

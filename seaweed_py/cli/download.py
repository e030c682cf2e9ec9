"""`weedpy download`: fetch blobs by file id, like `weed download`.

Each fid's volume is looked up at the master and read from a replica (failing over to the next);
chunked files come back whole because volume servers expand chunk manifests. A file is saved in
`-dir` under the name the server sends (`Content-Disposition`), else the fid, through a temporary
file that is renamed only once every byte announced by `Content-Length` has arrived. `-dir=-`
writes the blobs, concatenated, to standard output instead. Exit status 1 if any fid failed.

Several fids are fetched with `AsyncClient.download_many_named` (one `POST /batch/read` per
volume server and 1,000 fids; one GET each from servers without it, such as weed), in groups of
1,000, each blob held in memory until it is written.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seaweed_py.cli.secure import add_config_dir_flag, client_options, load_security
from seaweed_py.client import AsyncClient
from seaweed_py.client.progress import ProgressBar
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.errors import WeedError
from seaweed_py.formats.fid import parse_file_id

__all__ = ["build_flags", "run"]


def build_flags() -> FlagSet:
    flags = FlagSet("download", "Download blobs by file id.", "FID...")
    flags.add("master", "localhost:9333", "master address host:port (comma-separated for several)")
    flags.add("dir", ".", "directory to save the files in; - writes them to standard output")
    flags.add("usePublicUrl", False, "read from the volume servers' public URLs")
    flags.add("progress", True, "draw a progress bar on a terminal")
    add_config_dir_flag(flags)
    return flags


def run(argv: Sequence[str]) -> int:
    flags = build_flags()
    opts, fids = flags.parse(argv)
    if not fids:
        raise UsageError(f"no file ids given\n\n{flags.usage()}")
    for fid in fids:
        try:
            parse_file_id(fid)
        except WeedError as exc:
            raise UsageError(str(exc)) from None
    if opts["dir"] != "-" and not Path(opts["dir"]).is_dir():
        raise UsageError(f"-dir is not a directory: {opts['dir']}")
    _, security = load_security(opts)
    opts["master"], opts["ssl"] = client_options(security, opts["master"])
    return asyncio.run(_download_all(opts, fids))


_GROUP = 1000


async def _download_all(opts: dict[str, Any], fids: list[str]) -> int:
    failed = 0
    to_stdout = opts["dir"] == "-"
    async with AsyncClient(
        opts["master"], use_public_url=opts["usePublicUrl"], ssl=opts["ssl"]
    ) as client:
        if len(fids) > 1:
            for i in range(0, len(fids), _GROUP):
                failed += await _download_group(client, fids[i : i + _GROUP], opts["dir"])
            if to_stdout:
                sys.stdout.buffer.flush()
            return 1 if failed else 0
        for fid in fids:
            bar = ProgressBar(fid, sys.stderr, enabled=opts["progress"] and sys.stderr.isatty())
            try:
                if to_stdout:
                    await client.download_to(fid, sys.stdout.buffer, progress=bar.update)
                else:
                    saved = await client.save(fid, opts["dir"], progress=bar.update)
                    bar.close()
                    print(f"{fid}\t{saved}")
            except WeedError as exc:
                bar.close()
                failed += 1
                print(f"weedpy download: {fid}: {exc}", file=sys.stderr)
        if to_stdout:
            sys.stdout.buffer.flush()
    return 1 if failed else 0


async def _download_group(client: AsyncClient, fids: list[str], directory: str) -> int:
    """Fetch `fids` in batches and write each blob out; how many failed."""
    try:
        blobs = await client.download_many_named(fids)
    except WeedError as exc:
        print(f"weedpy download: {exc}", file=sys.stderr)
        return len(fids)
    failed = 0
    for fid in fids:
        blob = blobs.get(fid)
        if blob is None:
            failed += 1
            print(f"weedpy download: {fid}: not found", file=sys.stderr)
            continue
        if directory == "-":
            sys.stdout.buffer.write(blob.data)
            continue
        final = Path(directory) / (blob.name or fid)
        partial = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
        try:
            await asyncio.to_thread(partial.write_bytes, blob.data)
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)
        print(f"{fid}\t{final}")
    return failed

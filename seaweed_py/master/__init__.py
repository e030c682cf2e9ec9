"""The master daemon: cluster topology, volume growth and file-id assignment over HTTP.

`MasterServer(MasterOptions(...))` with `await start()` / `await stop()`; `add_master_flags` and
`master_options` declare and read its command-line flags (also under `weedpy server`).
"""

from seaweed_py.master.options import MasterOptions, add_master_flags, master_options
from seaweed_py.master.server import MasterServer

__all__ = ["MasterOptions", "MasterServer", "add_master_flags", "master_options"]

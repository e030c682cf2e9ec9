"""The volume server: blob REST API over `storage/`, heartbeats, admin calls, replication."""

from seaweed_py.volume.options import VolumeOptions, add_volume_flags, volume_options
from seaweed_py.volume.server import VolumeServer

__all__ = ["VolumeOptions", "VolumeServer", "add_volume_flags", "volume_options"]

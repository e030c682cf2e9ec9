"""Pure cluster model: data centers → racks → data nodes → volumes, volume layouts, placement
of new volumes, and the file-key sequencer. No I/O and no asyncio: time and randomness are
passed in."""

from seaweed_py.topology.layout import LayoutKey, LayoutVolume, VolumeLayout
from seaweed_py.topology.nodes import (
    DEFAULT_DATA_CENTER,
    DEFAULT_RACK,
    HDD,
    DataCenter,
    DataNode,
    Heartbeat,
    Rack,
    VolumeReport,
    normalize_disk,
)
from seaweed_py.topology.sequencer import Sequencer
from seaweed_py.topology.topology import DEAD_AFTER_PULSES, GrowthConfig, Topology, layout_key_of

__all__ = [
    "DEAD_AFTER_PULSES",
    "DEFAULT_DATA_CENTER",
    "DEFAULT_RACK",
    "HDD",
    "DataCenter",
    "DataNode",
    "GrowthConfig",
    "Heartbeat",
    "LayoutKey",
    "LayoutVolume",
    "Rack",
    "Sequencer",
    "Topology",
    "VolumeLayout",
    "VolumeReport",
    "layout_key_of",
    "normalize_disk",
]

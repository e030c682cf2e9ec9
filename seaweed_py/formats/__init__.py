"""Pure codecs for the SeaweedFS byte formats and weedpy's cluster messages: bytes in, frozen
values out.

| module | format |
|---|---|
| `fid` | file ids `3,01637037d6` |
| `ttl` | TTL strings, 2-byte and uint32 forms |
| `replica_placement` | `xyz` placement codes and their superblock byte |
| `crc` | CRC-32C needle checksums, raw and legacy forms |
| `needle` | needle records in `.dat` files (versions 1-3) |
| `superblock` | the first bytes of a `.dat` |
| `idx` | `.idx` entries with 4- or 5-byte offsets |
| `vif` | `.vif` volume info (protojson) |
| `chunk_manifest` | the JSON of chunk-manifest needles |
| `wire` | the master ↔ volume-server messages (heartbeats, admin calls) |

Nothing here touches files, sockets or clocks; errors are the typed ones of `seaweed_py.errors`.
"""

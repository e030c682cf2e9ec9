"""The commented security.toml that `weedpy scaffold -config=security` prints.

It holds the sections weedpy reads (`settings.py`), each with its default; the file is also a
valid security.toml for weed's master and volume servers, which read the same keys.
"""

from __future__ import annotations

__all__ = ["SECURITY_TOML"]

SECURITY_TOML = """\
# security.toml: keys, certificates and the address guard of a weedpy (or SeaweedFS) cluster.
#
# weedpy looks for this file in -config_dir (weedpy -config_dir=DIR master ...), then in the
# working directory, ~/.seaweedfs/, /usr/local/etc/seaweedfs/ and /etc/seaweedfs/, and reads
# the first one it finds. Every master and volume server of a cluster needs the same keys.
#
# Each value may come from the environment instead: WEED_ + the key in upper case with dots
# as underscores, e.g. WEED_JWT_SIGNING_KEY. A variable that is set and not empty wins, so
# secrets can stay out of this file (a Kubernetes Secret, a systemd credential...).
#
# A server that cannot use this file (not TOML, a value of the wrong type, an unknown key in
# one of the sections below, a certificate it cannot read) refuses to start. Send SIGHUP to a
# running server to load new keys and a new white list; if that load fails, the server keeps
# what it had and logs why. Certificates are read at start only.

# Writes and deletes. With a key, the master hands out a token for each file id it assigns
# (the Authorization header of /dir/assign, and of /dir/lookup?fileId=), and a volume server
# stores or deletes a blob only for a request carrying that token: in the jwt query
# parameter, an "Authorization: Bearer" header or an AT cookie. The same key signs the
# cluster's own traffic (heartbeats, the master's /admin/ calls, /vol/grow, /col/delete).
# Without a key, anyone who can reach a server can write, delete and administer it.
# Use a long random string, e.g. from: openssl rand -base64 48
[jwt.signing]
key = ""
expires_after_seconds = 10       # lifetime of a write token, from the moment it is issued

# Reads. With a key, every GET and HEAD of a blob needs a read token, which the master hands
# out on /dir/lookup?fileId=<fid>&read=yes. Leave it empty for blobs anyone may read.
[jwt.signing.read]
key = ""
expires_after_seconds = 60       # lifetime of a read token

# The volume server's status page (/ui/index.html) is not served while a signing key is set,
# because it lists volumes to anyone; true serves it anyway.
[access]
ui = false

# IP addresses and CIDRs (comma separated) allowed to use the master's API and to write to a
# volume server, added to each server's -whiteList. Empty: no address restriction. Only the
# TCP peer address counts; forwarding headers are ignored.
[guard]
white_list = ""

# HTTPS on the master's port. cert and key are PEM files; with ca set, the master accepts
# only clients presenting a certificate signed by that CA (volume servers and clients alike).
[https.master]
cert = ""
key = ""
ca = ""

# HTTPS on the volume server's port, the same way.
[https.volume]
cert = ""
key = ""
ca = ""

# How weedpy's own clients reach a cluster's servers: heartbeats, the master's admin calls,
# replication between volume servers, proxied reads, and the SDK and CLI (upload, download).
# enabled = true uses HTTPS, trusting ca (or the system's CAs when empty); cert and key are
# presented to servers that ask for a client certificate. Enable it on every server once
# [https.master] and [https.volume] are set. insecure_skip_verify accepts any server
# certificate: for experiments only.
[https.client]
enabled = false
ca = ""
cert = ""
key = ""
insecure_skip_verify = false
"""

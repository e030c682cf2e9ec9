"""Shim for the project layout: `python -m volume` runs `weedpy volume`. Not installed.

The real code is `seaweed_py.volume`; this package only forwards to it and the CLI.
"""

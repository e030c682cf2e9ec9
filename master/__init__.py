"""Shim for the project layout: `python -m master` runs `weedpy master`. Not installed.

The real code is `seaweed_py.master`; this package only forwards to it and the CLI.
"""

import sys

from seaweed_py.cli.main import main

sys.exit(main(["volume", *sys.argv[1:]]))

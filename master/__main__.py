import sys

from seaweed_py.cli.main import main

sys.exit(main(["master", *sys.argv[1:]]))

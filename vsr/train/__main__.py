"""`python -m vsr.train ...`: an entry point (vsr/weights/README.md names it), `vsr train ...`.

Like vsr/__main__.py it belongs to the command line, not the library: it only hands its
arguments to vsr.cli, which parses them, prints and picks the exit code.
"""

import sys

from vsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

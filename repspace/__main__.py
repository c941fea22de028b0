"""``python -m repspace`` (and ``torchrun -m repspace``): the ``repspace`` command."""

import sys

from repspace.cli import main

if __name__ == "__main__":
    sys.exit(main())

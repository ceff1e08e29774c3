"""``python -m diffsolve ...``: the ``diffsolve`` command line (:func:`diffsolve.cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

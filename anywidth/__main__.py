"""``python -m anywidth`` (and ``torchrun -m anywidth``): the `anywidth` command."""

import sys

from anywidth.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

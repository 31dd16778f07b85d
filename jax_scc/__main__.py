"""``python -m jax_scc``: the ``jax-scc`` command (see :mod:`jax_scc.cli`)."""

import sys

from jax_scc.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m jax_scc``: the ``jax-scc`` command (see :mod:`jax_scc.cli`)."""

from jax_scc.cli import console_main

if __name__ == "__main__":
    console_main()

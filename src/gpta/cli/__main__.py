"""``python -m gpta.cli``: the ``gpta`` command (as torchrun and accelerate launch it)."""

from gpta.cli import main

main()

"""``python -m vttiro …`` is the ``vttiro`` command."""

from ._cli import main

main()

"""``python -m dmsnode``: the same as the ``dmsnode`` command."""

from .cli import main

main()

"""``python -m roadworthy.cli``: the same as the ``roadworthy`` console script."""

from roadworthy.cli import main

main()

"""``python -m vlanalyze``: the same as the ``vlanalyze`` command."""

from vlanalyze.cli import main

main()

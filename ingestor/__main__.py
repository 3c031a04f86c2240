"""``python -m ingestor``: the same as the ``ingestor`` command."""

from ingestor.tools.cli import main

raise SystemExit(main())

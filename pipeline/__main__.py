"""``python -m pipeline`` runs the CLI, as the ``pipeline`` console script does."""

from pipeline.cli import main

main()

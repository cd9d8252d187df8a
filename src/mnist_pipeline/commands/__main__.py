"""``python -m mnist_pipeline.commands``: the ``mnist`` command where it is not installed."""

from mnist_pipeline.commands import main

main()

"""``python -m vadpack`` is the ``vadpack`` command."""

from pipeline.cli import entry

entry()

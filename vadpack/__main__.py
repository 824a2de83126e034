"""``python -m vadpack`` is the ``vadpack`` command."""

from vadpack.pipeline.cli import entry

entry()

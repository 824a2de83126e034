"""vadpack pipeline: config, audio decoding, tables, stage runner, CLI and engines."""

__version__ = "0.1.0"

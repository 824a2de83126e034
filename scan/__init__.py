"""Scanning: inputs (files, folders, globs, list files) -> recordings, one probed row per input file.

Modules:
    inputs: ``list_inputs``, what the inputs name on disk (the audio filter, list files, exclusions).
    stage: ``scan``, each file probed and given its id and content id; the stage's entry points.
    check: ``check``, the mistakes in ``inputs`` a person can fix before any work.
"""

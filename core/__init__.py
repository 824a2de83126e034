"""What every vadpack stage shares: audio decoding and resampling, the PCM cache, table schemas and
read/write, atomic writes, manifests, config tools and hashing, faults, token joining.

The rule of the house: stage packages (vad, packer, asr, speakers, stitcher) import only ``core`` and
themselves; ``core`` imports no stage and not ``pipeline``.
"""

__version__ = "0.2.0"

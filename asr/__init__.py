"""Speech recognition: packed batches -> segment transcripts with FunASR Paraformer.

Modules:
    config: ``AsrConfig``, the stage's options.
    types: the stage's data types (``SegmentResult``, ``FeatureBatch``, ``LoadedModel``, ...).
    tiny: ``write_tiny_model``, randomly initialised Paraformer folders for tests, demo and benchmarks.
    model: ``load_model`` (once per process) and ``PadInvariantModel``, the padding-invariance wrapper.
    features: fbank + LFR + CMVN in worker processes, delivered in order through a bounded prefetch.
    infer: ``decode_features`` (one result per item, always) and ``decode_batch`` (halving on OOM).
    stage: ``run_asr``, batches + PCM cache -> transcript part files, resumable.
    budget: ``measure_memory``, what ``packer.budget_s: auto`` needs measured on a GPU (the packer's
        rule, applied by the orchestrator, decides the budget).

FunASR is imported lazily (it takes seconds), so importing this package is cheap.
"""

"""Speech recognition: packed batches -> segment transcripts with FunASR Paraformer or SenseVoice.

Modules:
    config: ``AsrConfig``, the stage's options.
    types: the stage's data types (``SegmentResult``, ``FeatureBatch``, ``LoadedModel``, ...).
    model: ``load_model`` (once per process), which picks the model family from the loaded class.
    family: the seam: ``ModelFamily`` (``decode`` a padded batch into one result per item) and the
        registry of families by FunASR class.
    paraformer: ``ParaformerFamily`` (CIF): ``PadInvariantModel``, the padding-invariance wrapper,
        CIF timestamps, half precision, hotwords.
    sensevoice: ``SenseVoiceFamily`` (CTC): the four query embeddings, language/emotion/event per
        item, greedy CTC with forced-alignment times, tags kept out of the text.
    ctc: greedy CTC runs and exact Viterbi forced alignment of one item.
    features: fbank + LFR + CMVN in worker processes, delivered in order through a bounded prefetch.
    infer: ``decode_features`` (one result per item, always) and ``decode_batch`` (halving on OOM).
    stage: ``run_asr``, batches + PCM cache -> transcript part files, resumable.
    agreement: how far half precision's results are from float32's, as ``bench/precision.py`` measured.
    check: ``check``, what preflight collects: the model folder or hub id, the device, the family's settings.
    budget: ``measure_memory``, what ``packer.budget_s: auto`` needs measured on a GPU (the packer's
        rule, applied by the orchestrator, decides the budget).

    invariant: on the CPU in float32, every product a segment takes part in has a shape that depends
        on it alone or a row count measured row-independent on this machine (``core.reproducible``).

FunASR is imported lazily (it takes seconds), so importing this package is cheap. It sets no BLAS
mode: batch invariance rests on shapes and on what is measured on the machine at hand, not on a
vendor's reproducible mode.
"""

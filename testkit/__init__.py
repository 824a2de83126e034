"""Test and demo scaffolding: randomly initialised model folders, never used to transcribe real work.

Modules:
    tiny: ``write_tiny_model``, random Paraformer folders (``tiny`` for tests and the demo, ``large``
        with Paraformer-large's shapes for benchmarks).
    tiny_sensevoice: ``write_tiny_sensevoice``, the same for SenseVoice-Small; its tokenizer is trained
        offline on ``data/sensevoice_tiny_corpus.txt``.

``vadpack tiny-model DIR`` writes one; the tests and bench/ import them from here. Production code
(the stages and the pipeline's runs) never imports this package.
"""

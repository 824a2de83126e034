"""Helpers that tests and benchmarks share: decoding whole files, VAD scoring, synthetic speech.

None of this ships in a stage package: it exists to build inputs with exact truth and to score
results. Benchmarks import it as ``tests.support`` with the repository root on ``sys.path``.
"""

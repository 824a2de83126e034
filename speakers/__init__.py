"""The optional speakers stage: who spoke when, per recording.

segments + PCM cache -> windows inside each speech segment -> speaker embeddings in large batches
across recordings -> clusters per recording -> smoothed labels -> speaker spans. It needs neither
asr nor its output, so it can be rerun alone. See :func:`speakers.stage.run_speakers`.
"""

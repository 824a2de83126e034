"""Speech recognition: packed batches -> segment transcripts with FunASR Paraformer."""

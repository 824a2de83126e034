"""Stitching: segment transcripts -> per-recording documents, segments and tokens; Parquet/SRT/JSON export."""

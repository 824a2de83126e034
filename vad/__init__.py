"""Voice activity detection: audio -> speech regions -> segments of at most max_segment_s."""

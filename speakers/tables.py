"""The tables the speakers stage writes (to move into the shared tables module when the stage is wired in).

Explicit schemas, as for every vadpack table: an inferred schema drifts (a column that is all null
in one part comes out ``null`` typed, and the next part no longer concatenates).
"""

from __future__ import annotations

import pyarrow as pa

# One row per stretch of speech of one speaker; spans lie inside speech segments and tile them.
SPEAKER_SPANS = pa.schema([
    ("recording_id", pa.string()),
    ("start_sample", pa.int64()),
    ("end_sample", pa.int64()),
    ("speaker", pa.string()),  # S1, S2, ... in order of first appearance in the recording
])

# One row per window that got no embedding, and one (start/end null) per recording left without speakers.
SPEAKER_FAILURES = pa.schema([
    ("recording_id", pa.string()),
    ("start_sample", pa.int64()),
    ("end_sample", pa.int64()),
    ("error", pa.string()),
])

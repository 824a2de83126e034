"""Configuration of the stitch stage."""

from __future__ import annotations

from dataclasses import dataclass

from vadpack.core.configtools import check_fields, check_range

FORMATS = ("srt", "vtt", "json", "txt")
DEFAULT_PART_TOKENS = 1_000_000


@dataclass(frozen=True, slots=True)
class StitchConfig:
    """Options of the stitch stage.

    Attributes:
        formats: human-readable exports written per recording into ``output_dir/<format>/``.
        sentence_gap_s: without a punctuation model, a pause this long starts a new sentence.
        punc_model: optional FunASR punctuation model id or folder (ct-punc).
        partition_rows: about how many tokens one part file of a table holds (each table is a folder
            of part files of whole recordings, bucketed by a hash of the recording id); None is
            1,000,000. Changing it rewrites every table once.
    """

    formats: tuple[str, ...] = ("srt", "json")
    sentence_gap_s: float = 0.8
    punc_model: str | None = None
    partition_rows: int | None = None

    @property
    def part_tokens(self) -> int:
        """Tokens per part file: ``partition_rows`` or its default."""
        return self.partition_rows or DEFAULT_PART_TOKENS

    def __post_init__(self) -> None:
        check_fields(self, "stitch")
        for fmt in self.formats:
            if fmt not in FORMATS:
                raise ValueError(f"stitch.formats has {fmt!r}; allowed formats: {', '.join(FORMATS)}")
        check_range("stitch.sentence_gap_s", self.sentence_gap_s, 0, 60)
        if self.partition_rows is not None:
            check_range("stitch.partition_rows", self.partition_rows, 1, None)

"""Configuration of the speakers stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.configtools import check_choice, check_fields, check_range
from vadpack.core.device import check_device_spec

BACKENDS = ("resemblyzer", "campp")
CAMPP_DEFAULT_MODEL = "iic/speech_campplus_sv_zh-cn_16k-common"


@dataclass(frozen=True, slots=True)
class SpeakersConfig:
    """Options of the speakers stage.

    Attributes:
        enabled: run the stage at all; off by default, since most archives do not need it. When
            off the stage does nothing and the speaker columns are null.
        backend: speaker embedding model: ``resemblyzer`` (extra ``speakers``: trained weights ship
            in the PyPI wheel, works offline) or ``campp`` (FunASR's CAM++, from ``model``).
        model: ``campp``: a FunASR hub id or a local folder (config.yaml and model.pt); empty means
            ``iic/speech_campplus_sv_zh-cn_16k-common``. ``resemblyzer``: empty for the weights in
            the wheel, or the path of another VoiceEncoder checkpoint (.pt).
        window_s: length of an embedding window; a segment shorter than this gives one window of
            its own length.
        hop_s: step between window starts inside a segment; the last window ends at the segment end.
        num_speakers: the number of speakers when it is known (every recording gets exactly this
            many, or fewer when it has fewer windows); None estimates it per recording.
        min_speakers: lower bound of the estimated count.
        max_speakers: upper bound of the estimated count.
        threshold: average-linkage cut, in cosine distance between window embeddings after
            subtracting the recording's mean embedding (0 = same direction, 1 = unrelated, 2 =
            opposite). Larger gives fewer speakers.
        min_cluster_windows: a cluster of fewer windows is not a speaker of its own; its windows
            join the nearest larger cluster (1 turns this off).
        merge_similarity: clusters whose mean embeddings (before the mean is subtracted) have a
            cosine similarity of at least this are one voice and are merged; the guard that keeps a
            one-speaker recording at one speaker. Above 1 turns it off.
        smoothing: width, in windows, of the majority filter over each segment's labels (odd; 1 is
            off). A lone window between two neighbours that agree takes their label.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_windows: windows per model call; halved on CUDA out-of-memory, down to one.
        group_windows: windows held in memory at once: recordings are embedded in groups of about
            this many windows (a recording is never split), so memory does not grow with the archive.
        max_cluster_windows: a recording with more windows is clustered on an even subsample of this
            many, and every window then takes the nearest cluster (keeps linkage memory bounded).
        threads: torch intra-op threads; 1 by default, since two threads collapse under load.
        prefetch: batches whose audio and features are prepared ahead of the model.
    """

    # Change speed (or whether the stage runs), never a label: embeddings do not depend on the
    # batch (packed LSTM; CAM++ runs equal lengths together) and clustering is per recording.
    SPEED_ONLY: ClassVar[tuple[str, ...]] = ("enabled", "device", "batch_windows", "group_windows", "threads",
                                             "prefetch")

    enabled: bool = False
    backend: str = "resemblyzer"
    model: str = ""
    window_s: float = 3.0
    hop_s: float = 1.5
    num_speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int = 8
    threshold: float = 1.1
    min_cluster_windows: int = 2
    merge_similarity: float = 0.88
    smoothing: int = 3
    device: str = "auto"
    batch_windows: int = 256
    group_windows: int = 100_000
    max_cluster_windows: int = 4000
    threads: int = 1
    prefetch: int = 4

    def __post_init__(self) -> None:
        check_fields(self, "speakers")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"speakers.enabled must be true or false, got {self.enabled!r}")
        check_choice("speakers.backend", self.backend, BACKENDS)
        if not isinstance(self.model, str):
            raise ValueError(f"speakers.model must be a hub id or a path (a string), got {self.model!r}")
        check_range("speakers.window_s", self.window_s, 0.5, 30)
        check_range("speakers.hop_s", self.hop_s, 0.1, self.window_s)
        self._check_counts()
        check_range("speakers.threshold", self.threshold, 0, 2)
        check_range("speakers.min_cluster_windows", self.min_cluster_windows, 1, 1_000_000)
        check_range("speakers.merge_similarity", self.merge_similarity, -1, 1.01)
        check_range("speakers.smoothing", self.smoothing, 1, 99)
        if self.smoothing % 2 == 0:
            raise ValueError(f"speakers.smoothing = {self.smoothing} must be odd (1, 3, 5, ...); 1 turns it off")
        check_device_spec("speakers.device", self.device)
        check_range("speakers.batch_windows", self.batch_windows, 1, 1_000_000)
        check_range("speakers.group_windows", self.group_windows, 1, 100_000_000)
        check_range("speakers.max_cluster_windows", self.max_cluster_windows, 2, 100_000)
        check_range("speakers.threads", self.threads, 0, 1024)
        check_range("speakers.prefetch", self.prefetch, 1, 1024)

    def _check_counts(self) -> None:
        check_range("speakers.min_speakers", self.min_speakers, 1, 1000)
        check_range("speakers.max_speakers", self.max_speakers, self.min_speakers, 1000)
        for key in ("min_speakers", "max_speakers", "min_cluster_windows", "smoothing", "batch_windows",
                    "threads", "prefetch"):
            if not isinstance(getattr(self, key), int):
                raise ValueError(f"speakers.{key} must be a whole number, got {getattr(self, key)!r}")
        if self.num_speakers is not None:
            if isinstance(self.num_speakers, bool) or not isinstance(self.num_speakers, int):
                raise ValueError(f"speakers.num_speakers must be a whole number or null, got {self.num_speakers!r}")
            check_range("speakers.num_speakers", self.num_speakers, 1, 1000)

    @property
    def model_name(self) -> str:
        """The model to load: ``model``, or the backend's default when it is empty."""
        if self.model:
            return self.model
        return CAMPP_DEFAULT_MODEL if self.backend == "campp" else "resemblyzer"

    @property
    def window_samples(self) -> int:
        return round(self.window_s * SAMPLE_RATE)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * SAMPLE_RATE)

"""Configuration of the speakers stage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.configtools import check_choice, check_fields, check_range
from vadpack.core.device import check_device_spec

BACKENDS = ("auto", "resemblyzer", "campp")
CLUSTERINGS = ("auto", "ahc", "spectral")
REGIONS = ("auto", "vad", "segmentation", "trim")
EMBEDDINGS = ("window", "segment")
BOUNDARIES = ("midpoint", "quietest")
# Per backend: (window_s, hop_s). CAM++ is trained on short segments and gives its best on 1.5 s windows
# every 0.75 s (3D-Speaker's diarization recipe); resemblyzer on 3 s windows every 1.5 s.
WINDOWS = {"resemblyzer": (3.0, 1.5), "campp": (1.5, 0.75)}
# Per clustering: min_cluster_windows (3D-Speaker's min_cluster_size is 4 windows).
MIN_CLUSTER_WINDOWS = {"ahc": 2, "spectral": 4}
CAMPP_MAKE_TARGET = "make speaker-models"
CAMPP_DIR_ENV = "VADPACK_CAMPP_MODEL"


def default_campp_dir() -> Path:
    """Where ``make speaker-models`` puts the trained CAM++ (zh+en): ``runs/models/campplus`` in the
    source tree, or the folder the environment variable ``VADPACK_CAMPP_MODEL`` names."""
    env = os.environ.get(CAMPP_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "runs" / "models" / "campplus"


def segmentation_weights_ready() -> bool:
    """The segmentation-3.0 weights ``make speaker-models`` writes are there (``speakers.regions: auto``)."""
    from vadpack.speakers.segmentation import WEIGHTS_FILE, default_segmentation_dir

    return (default_segmentation_dir() / WEIGHTS_FILE).is_file()


def campp_folder_ready(folder: str | Path) -> bool:
    """``folder`` holds a CAM++ model as ``make speaker-models`` writes it (config.yaml and model.pt)."""
    path = Path(folder).expanduser()
    return (path / "config.yaml").is_file() and (path / "model.pt").is_file()


@dataclass(frozen=True, slots=True)
class SpeakersConfig:
    """Options of the speakers stage.

    Attributes:
        enabled: run the stage at all; off by default, since most archives do not need it. When
            off the stage does nothing and the speaker columns are null.
        backend: speaker embedding model: ``auto`` (default: ``campp`` when its trained weights are
            there, see ``model``, else ``resemblyzer``), ``resemblyzer`` (extra ``speakers``: trained
            weights ship in the PyPI wheel, works offline) or ``campp`` (CAM++ zh+en, 3D-Speaker's
            trained model, in FunASR's ``CAMPPlus`` class).
        model: ``campp``: a local folder (config.yaml and model.pt) or a FunASR hub id; empty means
            the folder ``make speaker-models`` writes (``runs/models/campplus``, or
            ``$VADPACK_CAMPP_MODEL``). ``resemblyzer``: empty for the weights in the wheel, or the
            path of another VoiceEncoder checkpoint (.pt). ``auto``: campp when ``model`` (or, empty,
            the default folder) is a CAM++ folder, else resemblyzer with ``model``.
        clustering: ``auto`` (``spectral`` for campp, ``ahc`` for resemblyzer), ``ahc``
            (average-linkage cut at ``threshold``, see :mod:`speakers.cluster`) or ``spectral``
            (spectral clustering, the count from the eigengap, see :mod:`speakers.spectral`).
        pval: spectral: the share of each window's most similar windows kept in the affinity graph
            (at least 6 are always kept).
        window_s: length of an embedding window; a segment shorter than this gives one window of
            its own length. None: the backend's own (resemblyzer 3 s, campp 1.5 s).
        hop_s: step between window starts inside a segment; the last window ends at the segment end.
            None: the backend's own (resemblyzer 1.5 s, campp 0.75 s).
        num_speakers: the number of speakers when it is known (every recording gets exactly this
            many, or fewer when it has fewer windows); None estimates it per recording.
        min_speakers: lower bound of the estimated count.
        max_speakers: upper bound of the estimated count.
        threshold: ahc: average-linkage cut, in cosine distance between window embeddings after
            subtracting the recording's mean embedding (0 = same direction, 1 = unrelated, 2 =
            opposite). Larger gives fewer speakers.
        min_cluster_windows: a cluster of fewer windows is not a speaker of its own; its windows
            join the nearest larger cluster (1 turns this off). None: the clustering's own (ahc 2,
            spectral 4).
        merge_similarity: clusters whose mean embeddings (before the mean is subtracted) have a
            cosine similarity of at least this are one voice and are merged; the guard that keeps a
            one-speaker recording at one speaker. Above 1 turns it off.
        boundary: where, between the centres of two neighbouring windows whose labels differ, the
            speaker change goes: ``midpoint`` (default: halfway) or ``quietest`` (the quietest
            100 ms there; the default before 2026-12-08, worse on 5 of the 6 human-labelled files
            of ``bench/speakers.py``: a pause between two centres 0.75 s apart is as often inside
            one speaker's turn as at the change).
        smoothing: width, in windows, of the majority filter over each segment's labels (odd; 1 is
            off). A lone window between two neighbours that agree takes their label.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_windows: windows per model call; halved on CUDA out-of-memory, down to one.
        group_windows: windows held in memory at once: recordings are embedded in groups of about
            this many windows (a recording is never split), so memory does not grow with the archive.
        max_cluster_windows: a recording with more windows is clustered on an even subsample of this
            many, and every window then takes the nearest cluster (keeps linkage memory bounded).
        threads: torch intra-op threads; 0 (the default) is one per core (the stage runs alone, before asr).
        prefetch: batches whose audio and features are prepared ahead of the model.
        regions: which speech the speakers are found in: ``auto`` (default: ``trim`` when the
            segmentation-3.0 weights of ``make speaker-models`` are there, else ``vad``), ``vad`` (every
            window of the vad segments is embedded and the spans tile the segments), ``trim`` (the
            windows and clustering of ``vad``, then each span is cut to the speech of pyannote's
            segmentation-3.0 model, see :mod:`speakers.segmentation`: non-speech sound inside a vad
            segment stops counting as anyone's speech) or ``segmentation`` (only windows whose centre
            lies in that speech are embedded; segments left with no window get no span). With
            ``trim`` and ``segmentation`` a recording whose model speech is empty keeps its vad spans.
        segmentation_hop_s: step between the segmentation model's 10 s windows (``trim`` and
            ``segmentation``); each window's frame probabilities are averaged where windows overlap.
            The model runs only on the windows that hold some vad speech, never on long silences.
        embedding: how the windows are embedded: ``window`` (each window through the whole network
            on its own) or ``segment`` (campp only: CAM++'s frame-level layers run once over each vad
            segment and every window pools its statistics from its own frames, so overlapping windows
            share the work; the layers then see the segment's context and its mean, so the embeddings
            differ a little). resemblyzer always embeds windows.
    """

    # Change speed (or whether the stage runs), never a label: embeddings do not depend on the
    # batch (packed LSTM; CAM++ runs equal lengths together) and clustering is per recording.
    SPEED_ONLY: ClassVar[tuple[str, ...]] = ("enabled", "device", "batch_windows", "group_windows", "threads",
                                             "prefetch")

    enabled: bool = False
    backend: str = "auto"
    model: str = ""
    clustering: str = "auto"
    pval: float = 0.012
    window_s: float | None = None
    hop_s: float | None = None
    num_speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int = 8
    threshold: float = 1.1
    min_cluster_windows: int | None = None
    merge_similarity: float = 0.88
    boundary: str = "midpoint"
    smoothing: int = 3
    device: str = "auto"
    batch_windows: int = 256
    group_windows: int = 100_000
    max_cluster_windows: int = 4000
    threads: int = 0
    prefetch: int = 4
    regions: str = "auto"
    segmentation_hop_s: float = 5.0
    embedding: str = "window"

    def __post_init__(self) -> None:
        check_fields(self, "speakers")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"speakers.enabled must be true or false, got {self.enabled!r}")
        check_choice("speakers.backend", self.backend, BACKENDS)
        check_choice("speakers.clustering", self.clustering, CLUSTERINGS)
        check_choice("speakers.regions", self.regions, REGIONS)
        check_choice("speakers.embedding", self.embedding, EMBEDDINGS)
        check_choice("speakers.boundary", self.boundary, BOUNDARIES)
        check_range("speakers.pval", self.pval, 0, 1)
        if not isinstance(self.model, str):
            raise ValueError(f"speakers.model must be a hub id or a path (a string), got {self.model!r}")
        if self.window_s is not None:
            check_range("speakers.window_s", self.window_s, 0.5, 30)
        if self.hop_s is not None:
            check_range("speakers.hop_s", self.hop_s, 0.1, self.resolved_window_s)
        self._check_counts()
        check_range("speakers.threshold", self.threshold, 0, 2)
        if self.min_cluster_windows is not None:
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
        check_range("speakers.segmentation_hop_s", self.segmentation_hop_s, 0.5, 10)

    def _check_counts(self) -> None:
        check_range("speakers.min_speakers", self.min_speakers, 1, 1000)
        check_range("speakers.max_speakers", self.max_speakers, self.min_speakers, 1000)
        for key in ("min_speakers", "max_speakers", "min_cluster_windows", "smoothing", "batch_windows",
                    "threads", "prefetch"):
            if not isinstance(getattr(self, key), int) and not (key == "min_cluster_windows" and
                                                                  self.min_cluster_windows is None):
                raise ValueError(f"speakers.{key} must be a whole number, got {getattr(self, key)!r}")
        if self.num_speakers is not None:
            if isinstance(self.num_speakers, bool) or not isinstance(self.num_speakers, int):
                raise ValueError(f"speakers.num_speakers must be a whole number or null, got {self.num_speakers!r}")
            check_range("speakers.num_speakers", self.num_speakers, 1, 1000)

    @property
    def resolved_backend(self) -> str:
        """The backend that runs: ``backend``, or for ``auto`` campp when its folder is ready, else resemblyzer."""
        if self.backend != "auto":
            return self.backend
        return "campp" if campp_folder_ready(self.model or default_campp_dir()) else "resemblyzer"

    @property
    def resolved_regions(self) -> str:
        """The regions that run: ``regions``, or for ``auto`` trim when the segmentation weights are there, else vad."""
        if self.regions != "auto":
            return self.regions
        return "trim" if segmentation_weights_ready() else "vad"

    @property
    def resolved_embedding(self) -> str:
        """The embedding that runs: ``embedding``, but ``window`` with resemblyzer (it has no frame-level layers)."""
        return self.embedding if self.resolved_backend == "campp" else "window"

    @property
    def resolved_clustering(self) -> str:
        """The clustering that runs: ``clustering``, or for ``auto`` spectral with campp, ahc with resemblyzer."""
        if self.clustering != "auto":
            return self.clustering
        return "spectral" if self.resolved_backend == "campp" else "ahc"

    @property
    def model_name(self) -> str:
        """The model to load: ``model``, or the resolved backend's default when it is empty."""
        if self.model:
            return self.model
        return str(default_campp_dir()) if self.resolved_backend == "campp" else "resemblyzer"

    @property
    def resolved_window_s(self) -> float:
        """``window_s``, or the resolved backend's own window."""
        return self.window_s if self.window_s is not None else WINDOWS[self.resolved_backend][0]

    @property
    def resolved_hop_s(self) -> float:
        """``hop_s``, or the resolved backend's own hop."""
        return self.hop_s if self.hop_s is not None else WINDOWS[self.resolved_backend][1]

    @property
    def resolved_min_cluster_windows(self) -> int:
        """``min_cluster_windows``, or the resolved clustering's own."""
        if self.min_cluster_windows is not None:
            return self.min_cluster_windows
        return MIN_CLUSTER_WINDOWS[self.resolved_clustering]

    @property
    def window_samples(self) -> int:
        return round(self.resolved_window_s * SAMPLE_RATE)

    @property
    def hop_samples(self) -> int:
        return round(self.resolved_hop_s * SAMPLE_RATE)

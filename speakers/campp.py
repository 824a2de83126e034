"""The ``campp`` backend: FunASR's CAM++ speaker model (``funasr/models/campplus``).

``speakers.model`` is a FunASR hub id (``iic/speech_campplus_sv_zh-cn_16k-common``, fetched by
FunASR on a machine with internet) or a local folder. A folder holding ``config.yaml`` (``model:
CAMPPlus`` and its ``model_conf``) and ``model.pt`` is built from FunASR's registered class and
loaded strictly here; anything else goes through FunASR's ``AutoModel``.

Features are FunASR's own for CAM++ (``campplus.utils.extract_feature``: 80-dim Kaldi fbank minus
its mean over the window). CAM++ pools statistics over time without a mask, so padding would change
an embedding: a batch runs in runs of windows of equal length (nearly all windows have the full
window length, so this costs little).

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
        FileNotFoundError: a local folder has config.yaml but no model.pt.
        ValueError: the folder's config names another model class.
    """
    folder = Path(model)
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


class CamppEmbedder:
    """FunASR's CAM++ as an :class:`speakers.embed.Embedder`.

    Args:
        model: a FunASR hub id or a local folder (see the module docstring).
        device: where the network runs.
    """

    def __init__(self, model: str, device: torch.device) -> None:
        self._extract = funasr_attr("models.campplus.utils", "extract_feature")
        self.net = load_campp(model, device)
        self.device = device
        self.dim = int(self.net.xvector.dense.linear.out_channels) if hasattr(self.net.xvector, "dense") else 192
        self.name = f"campp:{model}"

    def features(self, audio: np.ndarray) -> np.ndarray:
        """80-dim Kaldi fbank minus its mean over the window, as FunASR computes it for CAM++."""
        if audio.size < 400:  # one 25 ms fbank frame
            raise ValueError(f"window of {audio.size} samples is shorter than one 25 ms fbank frame")
        wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        with torch.inference_mode():
            feats, _, _ = self._extract([wav])
        return feats[0].numpy()

    def embed(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(feats), self.dim), dtype=np.float32)
        for idx in _equal_length_runs(feats):
            x = torch.from_numpy(np.stack([feats[i] for i in idx])).to(self.device)
            with torch.inference_mode():
                emb = self.net(x).float()
            emb = emb / torch.linalg.vector_norm(emb, dim=1, keepdim=True).clamp_min(1e-12)
            out[idx] = emb.cpu().numpy()
        return out


def _equal_length_runs(feats: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of ``feats`` grouped by frame count, in order of first appearance."""
    runs: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        runs.setdefault(len(f), []).append(i)
    return list(runs.values())

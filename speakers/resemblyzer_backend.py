"""The ``resemblyzer`` backend: Resemblyzer's trained voice encoder (the weights ship in its wheel).

Only two files of the ``resemblyzer`` package are used, and its ``__init__`` is never run: importing
the package imports ``webrtcvad`` (whose source distribution needs ``pkg_resources``, gone in
setuptools 81) and the deprecated ``scipy.ndimage.morphology`` for a VAD we do not need, since our
windows are already speech. We read the package's own ``hparams.py`` (mel and network sizes) and
``pretrained.pt`` (the trained weights), and compute exactly what ``VoiceEncoder`` computes:

- features: ``librosa.feature.melspectrogram`` with the hparams' window, hop and mel count (a power
  mel spectrogram, not log), as ``resemblyzer.audio.wav_to_mel_spectrogram``;
- embedding: a 3-layer LSTM, the last layer's final hidden state through a linear layer and a ReLU,
  L2-normalised, as ``VoiceEncoder.forward``. Windows of different lengths are packed
  (``pack_padded_sequence``), so padding never changes an embedding.

``tests/speakers/test_embed.py`` checks both against the package's own functions.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

INSTALL_HINT = "the resemblyzer speaker backend needs the extra: pip install 'vadpack[speakers]'"


def package_dir() -> Path:
    """The installed ``resemblyzer`` package folder, found without importing the package.

    Raises:
        ImportError: resemblyzer is not installed; the message names the extra.
    """
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations)))


def load_hparams() -> ModuleType:
    """Resemblyzer's ``hparams.py`` (plain constants), loaded from its file under a private name."""
    path = package_dir() / "hparams.py"
    spec = importlib.util.spec_from_file_location("_vadpack_resemblyzer_hparams", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"{path} is missing; reinstall it: {INSTALL_HINT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class VoiceEncoderNet(torch.nn.Module):
    """Resemblyzer's voice encoder network, with its layer names so its checkpoint loads as is."""

    def __init__(self, n_mels: int, hidden: int, embedding: int, layers: int) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(n_mels, hidden, layers, batch_first=True)
        self.linear = torch.nn.Linear(hidden, embedding)
        self.relu = torch.nn.ReLU()

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, frames, n_mels) zero-padded mels and their lengths -> (batch, embedding), L2-normed."""
        packed = torch.nn.utils.rnn.pack_padded_sequence(mels, lengths.cpu(), batch_first=True,
                                                         enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        raw = self.relu(self.linear(hidden[-1]))
        # A window of pure silence can give an all-zero vector after the ReLU; keep it finite.
        return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)


class ResemblyzerEmbedder:
    """Resemblyzer's voice encoder as an :class:`speakers.embed.Embedder` (256-dim embeddings).

    Args:
        device: where the network runs.
        weights_path: a VoiceEncoder checkpoint; None for ``pretrained.pt`` from the wheel.

    Raises:
        ImportError: resemblyzer is not installed.
        FileNotFoundError: ``weights_path`` does not exist.
    """

    def __init__(self, device: torch.device, weights_path: str | Path | None = None) -> None:
        import librosa  # noqa: F401  (fail here, with the hint, rather than in a prefetch thread)

        hp = load_hparams()
        self.sample_rate = int(hp.sampling_rate)
        self.n_fft = int(self.sample_rate * hp.mel_window_length / 1000)
        self.hop_length = int(self.sample_rate * hp.mel_window_step / 1000)
        self.n_mels = int(hp.mel_n_channels)
        path = Path(weights_path) if weights_path else package_dir() / "pretrained.pt"
        if not path.is_file():
            raise FileNotFoundError(f"speakers.model = {str(path)!r}: no such VoiceEncoder checkpoint")
        self.net = VoiceEncoderNet(self.n_mels, hp.model_hidden_size, hp.model_embedding_size,
                                   hp.model_num_layers)
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        # The checkpoint also holds the training loss's similarity scale and bias; not used here.
        self.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
        self.net.eval().to(device)
        self.device = device
        self.dim = int(hp.model_embedding_size)
        self.name = "resemblyzer" if weights_path is None else f"resemblyzer:{path}"

    def features(self, audio: np.ndarray) -> np.ndarray:
        """The (frames, n_mels) power mel spectrogram of 16 kHz float32 samples."""
        import librosa

        if audio.size == 0:
            raise ValueError("window has no samples")
        mel = librosa.feature.melspectrogram(y=np.asarray(audio, dtype=np.float32), sr=self.sample_rate,
                                             n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels)
        return mel.astype(np.float32).T

    def embed(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        lengths = torch.tensor([len(f) for f in feats], dtype=torch.int64)
        padded = np.zeros((len(feats), int(lengths.max()), self.n_mels), dtype=np.float32)
        for i, f in enumerate(feats):
            padded[i, : len(f)] = f
        with torch.inference_mode():
            out = self.net(torch.from_numpy(padded).to(self.device), lengths)
        return out.float().cpu().numpy()

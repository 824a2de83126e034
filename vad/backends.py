"""Frame classifiers behind ``vad.backend``: each is fed int16 16 kHz blocks and returns a FrameTrack.

All backends share one contract (:class:`FrameClassifier`), so the same state machine, padding and
length cap turn their frames into segments:

- ``webrtc`` (default): :class:`vad.frames.WebrtcFrames`, streaming and fast.
- ``silero``: the silero-vad network on 32 ms frames (extra ``silero``; the wheel carries its weights).
- ``fsmn``: FunASR's fsmn-vad from a local model folder; its speech intervals become 10 ms frames.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.funasr import funasr_attr
from vadpack.vad.config import VadConfig
from vadpack.vad.frames import FramedClassifier, WebrtcFrames, frame_levels_db
from vadpack.vad.types import FrameTrack


class FrameClassifier(Protocol):
    """Streaming frame classifier: :meth:`feed` blocks in order, then :meth:`finish` once."""

    def feed(self, pcm: np.ndarray) -> None: ...

    def finish(self) -> FrameTrack: ...


def make_classifier(cfg: VadConfig) -> FrameClassifier:
    """A fresh classifier for one recording, as ``cfg.backend`` says."""
    if cfg.backend == "webrtc":
        return WebrtcFrames(cfg.aggressiveness, cfg.frame_ms)
    if cfg.backend == "silero":
        return SileroFrames(cfg.silero_threshold)
    if cfg.backend == "fsmn":
        return FsmnFrames(cfg.fsmn_model or "")
    raise ValueError(f"vad.backend = {cfg.backend!r} is not allowed; choose webrtc, silero or fsmn")


class SileroFrames(FramedClassifier):
    """silero-vad speech probabilities on 512-sample (32 ms) frames, thresholded to flags.

    Args:
        threshold: speech probability above which a frame counts as speech.

    Raises:
        ImportError: when the ``silero`` extra is not installed.
    """

    FRAME_SAMPLES = 512  # the only frame size the 16 kHz model accepts

    def __init__(self, threshold: float) -> None:
        import torch

        self._torch = torch
        self._model = _silero_model()
        self._model.reset_states()  # the model is shared by the recordings of a worker: start clean
        self._threshold = threshold
        super().__init__(self.FRAME_SAMPLES)

    def _classify(self, frames: np.ndarray) -> np.ndarray:
        # The model is recurrent: frames go in one at a time, in order, and it keeps its own state.
        with self._torch.inference_mode():
            tensor = self._torch.from_numpy(frames.astype(np.float32) / 32768.0)
            probs = [float(self._model(tensor[i], SAMPLE_RATE)) for i in range(len(frames))]
        return np.asarray(probs, dtype=np.float32) > self._threshold


@functools.cache
def _silero_model():
    """The silero-vad network, loaded once per process (the wheel carries its weights)."""
    try:
        from silero_vad import load_silero_vad
    except ImportError as e:
        raise ImportError("vad.backend = 'silero' needs silero-vad: install the extra: "
                          "pip install 'vadpack[silero]'") from e
    with warnings.catch_warnings():
        # Deprecations inside silero-vad's own loader (importlib.resources, torch.jit) are not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad(onnx=False)


class FsmnFrames:
    """FunASR fsmn-vad from a local model folder; its speech intervals become 10 ms flags.

    fsmn-vad wants the whole recording at once, so this backend keeps it in memory (int16, about
    115 MB per hour): the one backend whose memory grows with the file.

    Args:
        model_dir: a local fsmn-vad model folder (config.yaml, model.pt, am.mvn).

    Raises:
        ValueError: when the folder is missing.
        ImportError: when FunASR is not installed.
    """

    FRAME_SAMPLES = SAMPLE_RATE // 100

    def __init__(self, model_dir: str) -> None:
        if not model_dir or not Path(model_dir).is_dir():
            raise ValueError(f"vad.fsmn_model = {model_dir!r} is not a folder: give a local fsmn-vad model "
                             "folder (config.yaml, model.pt, am.mvn), e.g. one downloaded from the "
                             "FunASR model hub as 'fsmn-vad'")
        try:
            AutoModel = funasr_attr("", "AutoModel")
        except ImportError as e:
            raise ImportError("vad.backend = 'fsmn' needs FunASR: pip install funasr") from e
        self._model = AutoModel(model=str(model_dir), disable_update=True, device="cpu")
        self._blocks: list[np.ndarray] = []

    def feed(self, pcm: np.ndarray) -> None:
        self._blocks.append(np.asarray(pcm, dtype=np.int16).copy())

    def finish(self) -> FrameTrack:
        pcm = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.int16)
        self._blocks = []
        n_frames = -(-len(pcm) // self.FRAME_SAMPLES)
        speech = np.zeros(n_frames, dtype=bool)
        if len(pcm):
            result = self._model.generate(input=pcm.astype(np.float32) / 32768.0, fs=SAMPLE_RATE)
            for start_ms, end_ms in result[0].get("value", []):
                speech[max(0, start_ms // 10): max(0, end_ms) // 10] = True
        padded = np.pad(pcm, (0, n_frames * self.FRAME_SAMPLES - len(pcm)))
        energy, ac, emphasis = frame_levels_db(padded, self.FRAME_SAMPLES)
        return FrameTrack(speech, energy, self.FRAME_SAMPLES, len(pcm), ac, emphasis)

"""What the benchmarks against FunASR share: its baseline with our segments, a token tap, synthetic audio.

- ``register_precomputed_vad`` puts a "VAD model" in FunASR's model tables that returns the segments
  it was built with, so ``AutoModel(model=DIR, vad_model=VAD_NAME).generate(...)`` runs FunASR's own
  loading, batching and decoding code on exactly vadpack's segments.
- ``TokenTap`` records, per segment FunASR decodes, an audio fingerprint, the tokens and the batch
  shapes, because FunASR's own output merges a recording's text and drops empty recordings. For
  SenseVoice it taps the ids FunASR's inference decodes and writes them as vadpack's tokens
  (``sensevoice_tokens``: tags and specials out, SentencePiece pieces in the project's convention).
- ``speech_audio`` (continuous speech) and ``meeting_audio`` (turns between pauses) are speech-like
  audio built from ``tests.support.synthetic.speech_burst``; ``write_pcm``
  stores audio as the vad stage stores it.

Imported by ``bench/asr.py`` and ``bench/e2e.py``; it imports torch and FunASR only inside functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from vadpack.core.cache import PCM_DTYPE, SAMPLE_RATE, pcm_path

from tests.support.synthetic import speech_burst

VAD_NAME = "VadpackPrecomputedVad"
Key = tuple[str, int]
_FINGERPRINT_EDGE = 4000  # samples hashed at each end of a segment: enough to tell segments apart, cheap


# ---- synthetic audio ----------------------------------------------------------------------------


def speech_audio(duration_s: float, seed: int) -> np.ndarray:
    """``duration_s`` seconds of continuous speech-like float32 audio: words with short pauses.

    Words are ``speech_burst``s of 0.2-1.2 s, 50-250 ms apart, so a random Paraformer fires tokens at
    a varying rate, as on speech. The length is exact (``round(duration_s * 16000)`` samples).
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * SAMPLE_RATE)
    out = np.zeros(n, dtype=np.float64)
    pos = int(rng.integers(0, SAMPLE_RATE // 20))
    while pos < n:
        word = speech_burst(rng, rng.uniform(0.2, 1.2))
        end = min(n, pos + len(word))
        out[pos:end] = word[: end - pos]
        pos = end + int(rng.uniform(0.05, 0.25) * SAMPLE_RATE)
    out += rng.normal(0.0, 0.001, n)
    return np.clip(out, -1.0, 0.999).astype(np.float32)


def meeting_audio(length_s: float, seed: int, noise_dbfs: float = -50.0) -> np.ndarray:
    """``length_s`` seconds of a synthetic meeting, float64 at 16 kHz: turns of words between pauses.

    Turn lengths are log-normal around 4 s (a few over 30 s, which the length cap has to split),
    words inside a turn are 50-350 ms apart, and turns are 1-3 s apart, or 0.3-0.8 s for one in
    five (quick turn-taking that a VAD bridges). The background is white noise at ``noise_dbfs``.
    """
    rng = np.random.default_rng(seed)
    n = round(length_s * SAMPLE_RATE)
    out = np.zeros(n, dtype=np.float64)
    pos = int(rng.uniform(0.3, 1.5) * SAMPLE_RATE)
    while pos < n:
        turn_end = min(n, pos + int(min(np.exp(rng.normal(np.log(4.0), 0.9)), 90.0) * SAMPLE_RATE))
        while pos < turn_end:
            word = speech_burst(rng, rng.uniform(0.2, 1.2))
            end = min(n, pos + len(word))
            out[pos:end] = word[: end - pos]
            pos = end + int(rng.uniform(0.05, 0.35) * SAMPLE_RATE)
        pause_s = rng.uniform(0.3, 0.8) if rng.random() < 0.2 else rng.uniform(1.0, 3.0)
        pos += int(pause_s * SAMPLE_RATE)
    out += 10 ** (noise_dbfs / 20) * rng.standard_normal(n)
    fade = min(n, SAMPLE_RATE // 50)
    out[n - fade:] *= np.linspace(1.0, 0.0, fade)  # no click where the recording ends
    return out


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1) as int16 samples, rounded and clipped as the vad stage does."""
    return np.clip(np.rint(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype(PCM_DTYPE)


def write_pcm(cache_dir: Path, recording_id: str, audio: np.ndarray, append: bool = False) -> Path:
    """Write (or append) float audio to a recording's PCM cache file, as the vad stage writes it."""
    path = pcm_path(cache_dir, recording_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab" if append else "wb") as f:
        f.write(to_pcm16(audio).tobytes())
    return path


# ---- FunASR with precomputed segments -----------------------------------------------------------


def segments_ms(spans: Iterable[tuple[str, int, int]]) -> dict[str, list[list[float]]]:
    """``{input: [[start_ms, end_ms], ...]}`` for FunASR's VAD interface, from sample spans.

    FunASR slices audio at ``int(ms * 16)``; sample / 16 is exact in binary floating point, so
    fractional milliseconds give back exactly our sample offsets, aligned or not.
    """
    out: dict[str, list[list[float]]] = {}
    per_ms = SAMPLE_RATE // 1000
    for key, start, end in spans:
        out.setdefault(key, []).append([start / per_ms, end / per_ms])
    return out


def register_precomputed_vad() -> None:
    """Register a FunASR 'VAD model' that returns, for each input, the segments it was built with.

    The model is built with ``segments_ms``: the input (file path, as given to ``generate``) ->
    ``[[start_ms, end_ms], ...]``. An input it does not know gets no segments.
    """
    import torch
    from vadpack.asr.funasr_compat import funasr_tables

    tables = funasr_tables()
    if VAD_NAME in tables.model_classes:
        return

    @tables.register("model_classes", VAD_NAME)
    class PrecomputedVad(torch.nn.Module):
        def __init__(self, segments_ms: dict[str, list[list[float]]] | None = None, **kwargs) -> None:
            super().__init__()
            self.segments_ms = segments_ms or {}
            # FunASR looks up a model's device from its first parameter.
            self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

        def inference(self, data_in, data_lengths=None, key=None, **kwargs):
            inputs = data_in if isinstance(data_in, (list, tuple)) else [data_in]
            return [{"key": k, "value": list(self.segments_ms.get(str(p), []))}
                    for k, p in zip(key, inputs)], {}


def build_automodel(model_dir: str | Path, device: str, threads: int, segments: dict[str, list[list[float]]],
                    dtype: str = "float32"):
    """FunASR's ``AutoModel`` of ``model_dir`` whose VAD returns ``segments`` (quiet while it loads).

    Args:
        dtype: ``float32`` or ``float16`` (FunASR's ``fp16`` flag, CUDA only).

    Raises:
        ValueError: ``bfloat16``: FunASR 1.4.16's ``bf16`` flag casts the model but not the features
            it computes, so ``generate`` fails with a dtype error.
    """
    from vadpack.asr.funasr_compat import funasr_tables

    if dtype not in ("float32", "float16"):
        raise ValueError(f"FunASR dtype {dtype!r} is not usable: AutoModel(bf16=True) casts the model but not "
                         "its float32 features, so generate() fails; use float32 or float16")
    funasr_tables()
    register_precomputed_vad()
    from funasr import AutoModel

    extra = {"fp16": True} if dtype == "float16" else {}
    with contextlib.redirect_stdout(io.StringIO()):
        return AutoModel(model=str(model_dir), vad_model=VAD_NAME, device=funasr_device(device), ncpu=threads,
                         vad_kwargs={"model_conf": {}, "segments_ms": segments}, disable_update=True,
                         disable_pbar=True, log_level="ERROR", **extra)


def generate_options(family: str) -> dict:
    """``generate`` keywords that match vadpack's asr defaults: SenseVoice's language and ITN."""
    return {"language": "auto", "use_itn": False} if family == "sensevoice" else {}


@dataclass(slots=True)
class TapRecord:
    """What the tap saw: per decoded segment its fingerprint and tokens; per model call its item lengths."""

    tokens: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    batches: list[tuple[int, ...]] = field(default_factory=list)

    def clear(self) -> None:
        self.tokens.clear()
        self.batches.clear()

    def padding_efficiency(self) -> float:
        """Real samples / samples the model computed (each call pads to its longest item)."""
        real = sum(sum(b) for b in self.batches)
        padded = sum(len(b) * max(b, default=0) for b in self.batches)
        return real / padded if padded else 1.0


class TokenTap:
    """Records what FunASR's ASR model decodes, call by call, in ``self.record``.

    FunASR's model ``inference`` turns each item's ids into tokens with the tokenizer it is given;
    the tap hands it a recording proxy of that tokenizer, which costs nothing measurable. Paraformer's
    inference calls ``ids2tokens`` per item, and a batch whose items all decode to nothing returns
    before the tokenizer: its items get empty tokens. SenseVoice's calls ``decode`` per item, with the
    ids of its four query frames (language, emotion, event, text normalisation) first.

    Args:
        am: FunASR's ``AutoModel``.
        family: ``paraformer`` or ``sensevoice`` (``asr.family``): which tokenizer call to record.
    """

    def __init__(self, am, family: str = "paraformer") -> None:
        self.record = TapRecord()
        inference = am.model.inference
        vocab = sensevoice_vocab(am.kwargs["tokenizer"]) if family == "sensevoice" else None

        def tapped_inference(data_in, *args, **kwargs):
            proxy = _RecordingTokenizer(kwargs["tokenizer"], vocab)
            out = inference(data_in, *args, **{**kwargs, "tokenizer": proxy})
            items = data_in if isinstance(data_in, (list, tuple)) else [data_in]
            toks = proxy.calls + [()] * (len(items) - len(proxy.calls))
            self.record.tokens.extend(zip((fingerprint(x) for x in items), toks))
            self.record.batches.append(tuple(len(x) for x in items))
            return out

        am.model.inference = tapped_inference

    @property
    def seen(self) -> list[tuple[str, tuple[str, ...]]]:
        return self.record.tokens


class _RecordingTokenizer:
    """A tokenizer that remembers the tokens of each item it turns into text; everything else is the
    wrapped one's. With ``vocab`` (SenseVoice) it records ``decode`` calls, else ``ids2tokens``."""

    def __init__(self, inner, vocab=None) -> None:
        self.inner, self.vocab = inner, vocab
        self.calls: list[tuple[str, ...]] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def ids2tokens(self, ids):
        out = self.inner.ids2tokens(ids)
        if self.vocab is None:
            self.calls.append(tuple(out))
        return out

    def decode(self, ids, *args, **kwargs):
        if self.vocab is not None:
            self.calls.append(sensevoice_tokens([int(i) for i in ids], self.vocab))
        return self.inner.decode(ids, *args, **kwargs)


def sensevoice_vocab(tokenizer):
    """SenseVoice's vocabulary (``asr.sensevoice.SenseVoiceVocab``) of FunASR's tokenizer, read once."""
    from vadpack.asr.sensevoice import SenseVoiceVocab

    pieces = [tokenizer.sp.id_to_piece(i) for i in range(tokenizer.sp.get_piece_size())]
    return SenseVoiceVocab.from_pieces(pieces, blank_id=0, sos=1, eos=2)


def sensevoice_tokens(ids: list[int], vocab) -> tuple[str, ...]:
    """FunASR SenseVoice's decoded ids as vadpack writes its tokens: every tag (the four query answers
    and any in the speech), ``<s>`` and ``</s>`` left out, pieces in the project's convention.

    vadpack reads the query frames as language, emotion and event only, so a text token there
    (never seen from the trained model) would count as a mismatch, as it should.
    """
    from vadpack.asr.sensevoice import piece_tokens

    return tuple(token for _, token in piece_tokens([vocab.pieces[i] for i in ids if i not in vocab.drop_ids]))


def fingerprint(audio) -> str:
    """A segment's identity: its length and a hash of the samples at both ends (float32).

    Hashing only the ends keeps the tap cheap on hours of audio; two different segments of
    synthetic speech do not share their length and both edges.
    """
    x = np.ascontiguousarray(np.asarray(audio, dtype=np.float32)).reshape(-1)
    edge = _FINGERPRINT_EDGE
    h = hashlib.sha1(str(len(x)).encode())
    h.update(x[:edge].tobytes())
    h.update(x[-edge:].tobytes())
    return h.hexdigest()


def funasr_device(device: str) -> str:
    """FunASR's device string for ours (``auto`` resolved here, ``cuda`` -> ``cuda:0``)."""
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return "cuda:0" if device == "cuda" else device


def device_name(device: str) -> str:
    """``cpu xN`` or the CUDA device's name, for the JSON ``device`` key."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu x{os.cpu_count()}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class TreeRssSampler:
    """Samples, in a thread, the summed resident memory of a process and all its descendants.

    The sum counts pages shared between processes (a forked worker's copy of the interpreter) once
    per process, so it is an upper bound on the memory the tree holds. Use as a context manager.
    """

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.peak_mb = 0.0
        self._stop = None
        self._thread = None

    def __enter__(self) -> TreeRssSampler:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))


def tree_rss_mb(root: int) -> float:
    """Summed resident memory of ``root`` and its descendants now, in MiB (0 when it is gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20

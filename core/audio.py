"""Audio decoding: any input file -> 16 kHz mono, streamed in blocks so memory does not grow with length.

soundfile (libsndfile) reads wav (16/24/32-bit int and float), flac, ogg/vorbis/opus and mp3. PyAV is
imported lazily and only for what soundfile cannot read (m4a/aac, opus in mp4/webm), so a machine
without it still decodes wav archives. Every source is downmixed by the mean of its channels and
resampled by a streaming polyphase windowed-sinc filter written in numpy (no scipy/soxr needed), which
keeps the output exact in length: ``round(n_in * 16000 / rate)`` samples, continuous across blocks.

Problems a person can act on raise :class:`AudioError`. Problems that still leave usable audio (a
truncated file, NaN samples in a float wav) are reported as warnings: :func:`decode_to_pcm` returns
them in :class:`~core.types.DecodeResult`, and :func:`decode_16k` appends them to its ``notes``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from vadpack.core.atomic import atomic_path
from vadpack.core.cache import PCM_DTYPE, SAMPLE_RATE
from vadpack.core.nativelog import native_stderr_into
from vadpack.core.resample import PolyphaseResampler
from vadpack.core.types import AudioInfo, DecodeResult

# soundfile subtypes -> the codec names ffprobe would print, so the recordings table reads the same
# whichever library decoded a file.
_SF_CODECS = {
    "PCM_S8": "pcm_s8", "PCM_U8": "pcm_u8", "PCM_16": "pcm_s16le", "PCM_24": "pcm_s24le",
    "PCM_32": "pcm_s32le", "FLOAT": "pcm_f32le", "DOUBLE": "pcm_f64le", "ULAW": "pcm_mulaw",
    "ALAW": "pcm_alaw", "VORBIS": "vorbis", "OPUS": "opus", "MPEG_LAYER_III": "mp3",
    "MPEG_LAYER_II": "mp2", "MPEG_LAYER_I": "mp1",
}
_NO_AUDIO = "no audio: the file holds 0 samples"
# A file whose decoded length falls short of its header by more than this is reported as truncated.
_TRUNCATION_TOLERANCE_S = 0.010


class AudioError(Exception):
    """An input file that cannot be decoded; the message says why in words a person can act on."""


# ---- public API --------------------------------------------------------------------------------


def probe(path: str) -> AudioInfo:
    """Read the header of an audio file: duration, sample rate, channels and codec.

    Cheap: no audio is decoded. For a truncated WAV the duration is what can actually be read.
    What a native decoder prints meanwhile is kept off the terminal; it joins the error's reason.

    Raises:
        AudioError: when the file is missing, empty, or not an audio file.
    """
    said: list[str] = []
    try:
        with native_stderr_into(said):
            return _probe(path)
    except AudioError as e:
        raise AudioError("; ".join([str(e), *said])) from e


def _probe(path: str) -> AudioInfo:
    _check_file(path)
    if not _soundfile_may_read(path):
        return _av_probe(path)
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError):
        return _av_probe(path)
    if info.frames <= 0 and info.format == "MP3":
        return _av_probe(path)  # libsndfile reports 0 frames for some VBR mp3s without a Xing header
    if info.frames <= 0:
        raise AudioError(_NO_AUDIO)
    codec = "flac" if info.format == "FLAC" else _SF_CODECS.get(info.subtype, info.subtype.lower())
    return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels), codec)


def decode_to_pcm(
    path: str,
    out_path: Path,
    on_block: Callable[[np.ndarray], None] | None = None,
    block_s: float = 10.0,
) -> DecodeResult:
    """Decode ``path`` into the PCM cache: raw little-endian int16, 16 kHz mono, written atomically.

    The file is written under a temporary name and renamed when complete, so a crash never leaves a
    partial cache file that a rerun would trust.

    Args:
        path: input audio file.
        out_path: the cache file (see :func:`core.cache.pcm_path`).
        on_block: called with each int16 block as it is written, so that a consumer (the VAD)
            sees the audio without reading the file back.
        block_s: decoding block length in seconds.

    Returns:
        The number of samples written and a warning for a person, or None.

    Raises:
        AudioError: when the file cannot be decoded at all (nothing is written).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    n_samples = 0
    with atomic_path(out_path) as tmp, open(tmp, "wb") as out:
        for pcm in decode_16k(path, block_s, notes, as_int16=True):
            out.write(pcm.tobytes())
            n_samples += len(pcm)
            if on_block is not None:
                on_block(pcm)
    return DecodeResult(n_samples=n_samples, warning="; ".join(notes) or None)


def to_int16(block: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) -> little-endian int16, rounded and clipped (float wavs may exceed 1)."""
    scaled = np.rint(block * 32768.0)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype(PCM_DTYPE)


# ---- decoding ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Source:
    """An opened input: its native rate and a generator of mono blocks in time order.

    ``is_pcm16k`` says the blocks are already 16 kHz mono int16 (a 16-bit 16 kHz mono file read as
    it is stored), which the cache writer copies through untouched.
    """

    rate: int
    blocks: Iterator[np.ndarray]
    is_pcm16k: bool = False


def decode_16k(path: str, block_s: float = 10.0, notes: list[str] | None = None,
               as_int16: bool = False) -> Iterator[np.ndarray]:
    """Decode ``path`` to 16 kHz mono blocks of about ``block_s`` seconds, float32 (or int16).

    Memory is bounded by the block size whatever the length of the file. The blocks join without
    gaps or clicks, and their total length is ``round(frames * 16000 / rate)``.

    Args:
        path: input audio file.
        block_s: decoding block length in seconds.
        notes: caveats a person should know (truncation, NaN samples) are appended here.
        as_int16: yield int16 blocks (a 16 kHz mono 16-bit file is then copied through untouched).

    Raises:
        AudioError: when the file cannot be decoded at all.
    """
    notes = [] if notes is None else notes
    if block_s <= 0:
        raise ValueError(f"block_s must be > 0, got {block_s}")
    _check_file(path)
    source = _open_source(path, block_s, notes, as_int16)
    if source.is_pcm16k:
        n_samples = 0
        for block in source.blocks:
            n_samples += len(block)
            yield block
        if n_samples == 0:
            raise AudioError("; ".join([_NO_AUDIO, *notes]))
        return
    resampler = PolyphaseResampler(source.rate, SAMPLE_RATE)
    for block in source.blocks:
        out = resampler.process(_finite(block, notes))
        if len(out):
            yield to_int16(out) if as_int16 else out
    tail = resampler.flush()
    if len(tail):
        yield to_int16(tail) if as_int16 else tail
    if resampler.n_out == 0:
        raise AudioError("; ".join([_NO_AUDIO, *notes]))


def _open_source(path: str, block_s: float, notes: list[str], as_int16: bool) -> _Source:
    """soundfile when it can read the file, else PyAV."""
    if not _soundfile_may_read(path):
        return _av_source(path, block_s, notes)
    said: list[str] = []
    try:
        with native_stderr_into(said):
            handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError):
        return _av_source(path, block_s, notes)  # what libsndfile said no longer matters
    notes += said
    if handle.frames <= 0 and handle.format == "MP3":
        handle.close()
        return _av_source(path, block_s, notes)
    native = as_int16 and handle.subtype == "PCM_16" and handle.channels == 1 and handle.samplerate == SAMPLE_RATE
    rate = int(handle.samplerate)
    claimed = _claimed_frames(path, handle)
    return _Source(rate, _sf_blocks(handle, claimed, block_s, notes, native), is_pcm16k=native)


def _sf_blocks(handle: sf.SoundFile, claimed: int, block_s: float, notes: list[str],
               native: bool) -> Iterator[np.ndarray]:
    """Read ``handle`` in mono blocks; a read error after some audio is reported as truncation."""
    rate, read = int(handle.samplerate), 0
    # Equal weights for the downmix, applied as one matrix product (much faster than mean(axis=1)).
    weights = np.full(handle.channels, 1.0 / handle.channels, dtype=np.float32)
    with handle:
        while True:
            try:
                with native_stderr_into(notes):  # libmpg123 writes its resync notes to fd 2
                    data = handle.read(max(1, int(block_s * rate)), dtype="int16" if native else "float32",
                                       always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                if read == 0:
                    raise AudioError("; ".join([f"cannot decode audio: {e}", *notes])) from e
                notes.append(f"decode error after {read / rate:.1f} s ({e}); decoded what was readable")
                return
            if not len(data):
                break
            read += len(data)
            yield data[:, 0].copy() if data.shape[1] == 1 else data @ weights
    _note_truncation(claimed, read, rate, notes)


def _soundfile_may_read(path: str) -> bool:
    """False for a ``.mp3`` that does not start like one (ID3 tag or MPEG frame sync).

    libsndfile hands every ``.mp3`` to libmpg123, which prints resync notes to stderr while it
    searches a text file for audio; PyAV rejects such a file quietly.
    """
    if not path.lower().endswith(".mp3"):
        return True
    with open(path, "rb") as f:
        head = f.read(3)
    return head == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _claimed_frames(path: str, handle: sf.SoundFile) -> int:
    """Frames the header promises: the RIFF data chunk for WAV, else libsndfile's count."""
    if handle.format in ("WAV", "WAVEX"):
        data_bytes = _wav_data_bytes(path)
        block_align = handle.channels * _bytes_per_sample(handle.subtype)
        if data_bytes is not None and block_align:
            return data_bytes // block_align
    return max(0, int(handle.frames))


def _wav_data_bytes(path: str) -> int | None:
    """The size of the RIFF ``data`` chunk as the header states it, or None when unknown.

    libsndfile quietly shrinks a truncated WAV's length to what is on disk, so the header is read
    here to tell the user that the file was cut short.
    """
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk_id, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean a streamed writer never filled in the size.
            return None if size in (0, 0xFFFFFFFF) else size
        pos += 8 + size + (size & 1)
    return None


def _bytes_per_sample(subtype: str) -> int:
    return {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
            "ULAW": 1, "ALAW": 1}.get(subtype, 0)


def _note_truncation(claimed: int, read: int, rate: int, notes: list[str],
                     tolerance_s: float = _TRUNCATION_TOLERANCE_S) -> None:
    if claimed - read > tolerance_s * rate and not any(n.startswith("decode error") for n in notes):
        notes.append(
            f"truncated: header says {claimed / rate:.1f} s, {read / rate:.1f} s readable; "
            "decoded what was readable"
        )


def _finite(block: np.ndarray, notes: list[str]) -> np.ndarray:
    """Replace NaN/inf samples (broken float wavs) by 0 so that they cannot poison the VAD or ASR."""
    if np.isfinite(block).all():
        return block
    block = np.where(np.isfinite(block), block, np.float32(0))
    if not any(n.startswith("non-finite") for n in notes):
        notes.append("non-finite samples (NaN/inf) replaced by 0")
    return block


def _check_file(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"file not found: {path}")
    if not p.is_file():
        raise AudioError(f"not a regular file: {path}")
    if p.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise AudioError("permission denied: vadpack cannot read this file")


# ---- PyAV (lazy) -------------------------------------------------------------------------------


def _import_av():
    try:
        import av
    except ImportError as e:
        raise AudioError(
            "not an audio format soundfile can read, and PyAV is not installed for the others "
            "(m4a/aac, opus in mp4/webm): pip install av"
        ) from e
    return av


def _av_open(path: str):
    """Open ``path`` with PyAV and return ``(container, audio stream)``."""
    av = _import_av()
    try:
        container = av.open(path)
    except av.error.InvalidDataError as e:
        raise AudioError("not an audio file: neither soundfile nor PyAV recognise its format") from e
    except av.error.FFmpegError as e:
        raise AudioError(f"cannot open with PyAV: {e.strerror or e}") from e
    streams = [s for s in container.streams if s.type == "audio"]
    if not streams:
        container.close()
        raise AudioError("not an audio file: no audio stream found")
    return container, streams[0]


def _av_probe(path: str) -> AudioInfo:
    container, stream = _av_open(path)
    with container:
        return AudioInfo(_av_duration_s(container, stream), int(stream.rate or 0),
                         int(stream.channels or 0), stream.codec_context.name)


def _av_duration_s(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / 1_000_000


def _av_source(path: str, block_s: float, notes: list[str]) -> _Source:
    """Open ``path`` with PyAV; raises AudioError when it has no decodable audio stream."""
    container, stream = _av_open(path)
    rate = int(stream.rate or stream.codec_context.sample_rate or 0)
    if rate <= 0:
        container.close()
        raise AudioError("not an audio file: the audio stream has no sample rate")
    claimed = round(_av_duration_s(container, stream) * rate)
    return _Source(rate, _av_blocks(container, stream, rate, claimed, block_s, notes))


def _av_blocks(container, stream, rate: int, claimed: int, block_s: float,
               notes: list[str]) -> Iterator[np.ndarray]:
    """Decode with PyAV, gathering frames into blocks; a demux/decode error mid-way is a truncation."""
    av = _import_av()
    pending: list[np.ndarray] = []
    n_pending = read = 0
    with container:
        try:
            for frame in container.decode(stream):
                if frame.sample_rate != rate:
                    raise AudioError(f"sample rate changes mid-stream ({rate} -> {frame.sample_rate} Hz)")
                pending.append(_av_frame_mono(frame))
                n_pending += frame.samples
                if n_pending >= block_s * rate:
                    read += n_pending
                    yield np.concatenate(pending)
                    pending, n_pending = [], 0
        except av.error.FFmpegError as e:
            if read + n_pending == 0:
                raise AudioError(f"cannot decode audio: {e}") from e
            notes.append(f"decode error after {(read + n_pending) / rate:.1f} s ({e}); decoded what was readable")
    if pending:
        yield np.concatenate(pending)
    # Container durations are approximate (codec priming, estimated durations): only a clear shortfall
    # counts as truncation.
    _note_truncation(claimed, read + n_pending, rate, notes, tolerance_s=max(0.5, 0.02 * claimed / rate))


def _av_frame_mono(frame) -> np.ndarray:
    """One PyAV frame -> mono float32, whatever its sample format (planar or packed, int or float)."""
    data = frame.to_ndarray()
    n_channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, n_channels).T
    if data.dtype.kind == "u":
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        data = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    data = data.astype(np.float32, copy=False)
    return data.mean(axis=0, dtype=np.float32) if len(data) > 1 else data[0]

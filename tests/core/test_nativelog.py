"""What native decoders write to fd 2 ends up in the recording's warning or failure, not on the terminal."""

from __future__ import annotations

import os
import threading

import duckdb
import numpy as np
import pytest
import soundfile as sf
from vadpack.core.audio import AudioError, decode_16k
from vadpack.core.nativelog import native_stderr_into
from vadpack.pipeline.cli import main

from tests.conftest import REPO, write_config
from tests.test_reliability import speechy


def corrupt_mp3(path) -> None:
    """The bundled mp3 with 3 kB of noise in its middle: libmpg123 loses sync and says so on fd 2."""
    data = bytearray((REPO / "examples" / "funasr_asr_example_zh.mp3").read_bytes())
    mid = len(data) // 2
    data[mid:mid + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_fd2_writes_become_one_note(capfd):
    notes: list[str] = []
    with native_stderr_into(notes):
        # What a C library does: write to file descriptor 2, below Python's sys.stderr.
        for _ in range(5):
            os.write(2, b"Note: Trying to resync...\n")
        os.write(2, b"error: dequantization failed!\n")
    assert notes == ["decoder said: Note: Trying to resync... | error: dequantization failed!"]
    assert capfd.readouterr().err == ""
    with native_stderr_into(notes):
        pass
    assert len(notes) == 1  # nothing said, nothing noted


def test_fd2_is_restored_whatever_threads_do():
    before = os.fstat(2)

    def capture() -> None:
        for _ in range(200):
            with native_stderr_into([]):
                os.write(2, b"x\n")

    threads = [threading.Thread(target=capture) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_libmpg123_chatter_is_kept_off_the_terminal(tmp_path, capfd):
    path = tmp_path / "corrupt.mp3"
    corrupt_mp3(path)
    notes: list[str] = []
    with pytest.raises(AudioError, match="decoder said: .*resync"):
        for _ in decode_16k(str(path), notes=notes):
            pass
    err = capfd.readouterr().err
    assert "mpg123" not in err and "resync" not in err


def test_the_decoder_note_reaches_the_failures_table(tmp_path, tiny_model, capfd):
    archive = tmp_path / "archive"
    archive.mkdir()
    corrupt_mp3(archive / "corrupt.mp3")
    sf.write(archive / "ok.wav", speechy(2.0), 16000)
    cfg = write_config(tmp_path, [str(archive)], tiny_model)
    assert main(["run", str(cfg), "--no-progress"]) == 3
    out = tmp_path / "work" / "output"
    rows = duckdb.execute("select path, error from read_parquet(?)", [str(out / "failures.parquet")]).fetchall()
    assert len(rows) == 1 and rows[0][0].endswith("corrupt.mp3") and "decoder said: " in rows[0][1]
    assert "mpg123" not in capfd.readouterr().err

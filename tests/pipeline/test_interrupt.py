"""Ctrl-C: the terminal sends SIGINT to every process of the run; vadpack exits 130 with one line,
and no worker, forkserver or half-started child prints a traceback.

The real CLI runs in its own session, as in a terminal, and the whole process group is signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, write_config
from tests.test_reliability import speechy

# A shell shows both as exit status 130: sys.exit(130) after the one line, or (rarely, while asr starts
# its forkserver) the process ending by the signal itself after it printed that line.
INTERRUPTED = (130, -signal.SIGINT)


def _as_from_a_terminal() -> None:
    # A shell starts a foreground command with SIGINT at its default. A test suite run in the
    # background (`cmd &` from a script) has SIGINT ignored, which its children would inherit and
    # honour, as `nohup vadpack run ... &` rightly does: the Ctrl-C under test would never arrive.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_run(cfg: Path, ready: Path, delay_s: float, *args: str) -> tuple[int, str]:
    """Start ``vadpack run``, wait until ``ready`` exists, then Ctrl-C the whole process group."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "vadpack", "run", str(cfg), "--no-progress", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay_s)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.fixture()
def long_archive(tmp_path) -> Path:
    """Three 8-minute recordings: vad on two workers is still busy a few seconds in."""
    root = tmp_path / "long"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"talk{i}.wav", np.tile(speechy(30.0, seed=i), 16), 16000, subtype="PCM_16")
    return root


@pytest.mark.parametrize("delay_s", [0.0, 0.4, 1.5])
def test_ctrl_c_during_vad(tmp_path, long_archive, tiny_model, delay_s):
    # 0 s: while the workers are being spawned; later: while they decode.
    cfg = write_config(tmp_path, [str(long_archive)], tiny_model, vad={"workers": 2})
    code, err = interrupt_run(cfg, tmp_path / "work" / "pcm", delay_s)
    assert code == 130, err
    assert "Traceback" not in err and "Error" not in err, err
    assert [line for line in err.splitlines() if "interrupted" in line] == \
        ["vadpack: interrupted; rerun the same command to resume (completed work is kept)"]


@pytest.mark.slow
def test_ctrl_c_while_asr_starts_its_feature_workers(tmp_path, tiny_model):
    # The forkserver preloads FunASR and the parent imports it: seconds during which FunASR's bare
    # except: clauses used to swallow the interrupt and the forkserver printed a traceback.
    root = tmp_path / "short"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"talk{i}.wav", speechy(20.0, seed=i), 16000, subtype="PCM_16")
    cfg = write_config(tmp_path, [str(root)], tiny_model, asr={"feature_workers": 1, "batches_per_part": 1},
                       packer={"budget_s": 10})
    code, err = interrupt_run(cfg, tmp_path / "work" / "manifests" / "pack.json", 0.5)
    assert code in INTERRUPTED, err
    assert "Traceback" not in err, err
    assert [line for line in err.splitlines() if "interrupted" in line] == \
        ["vadpack: interrupted; rerun the same command to resume (completed work is kept)"]
    assert not (tmp_path / "work" / "manifests" / "asr.json").exists()

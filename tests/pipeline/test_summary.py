"""The run summary: half precision says it may have changed results (with the measured agreement);
figures with nothing behind them (padding efficiency of no batches) are left out."""

from __future__ import annotations

import pytest
from vadpack.asr.agreement import HALF_PRECISION_AGREEMENT
from vadpack.pipeline.summary import RunSummary, print_summary

BASE = {"files": 1, "failed_inputs": 0, "failed_segments": 0, "wall_s": 1.0, "stages_run": ("asr",),
        "output_dir": "out", "decoded_segments": 3, "decoded_audio_s": 12.0, "reused_segments": 0}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_gets_one_line_with_its_agreement(dtype: str, capsys: pytest.CaptureFixture) -> None:
    print_summary(RunSummary(**{**BASE, "dtype": dtype}))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("precision")]
    assert len(lines) == 1
    measured = HALF_PRECISION_AGREEMENT[dtype]
    assert "may differ from float32 and between batchings" in lines[0]
    assert f"{measured.token_agreement:.1%} token agreement" in lines[0]


def test_float32_says_nothing(capsys: pytest.CaptureFixture) -> None:
    print_summary(RunSummary(**{**BASE, "dtype": "float32"}))
    print_summary(RunSummary(**BASE))  # the default precision
    assert "precision" not in capsys.readouterr().out


def test_padding_efficiency_only_when_batches_were_decoded(capsys: pytest.CaptureFixture) -> None:
    print_summary(RunSummary(**{**BASE, "batches": 0, "decoded_segments": 0, "reused_segments": 3}))
    print_summary(RunSummary(**{**BASE, "batches": 2, "padding_efficiency": 0.6921}))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("batches")]
    assert lines == ["batches        0", "batches        2  padding efficiency 0.692"]

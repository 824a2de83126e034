"""Optional punctuation of document texts with a FunASR punctuation model (CT-Transformer, ct-punc).

Without a punctuation model, documents keep the model's unpunctuated text and the exports split
sentences at pauses of at least ``stitch.sentence_gap_s``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from vadpack.core.funasr import funasr_attr
from vadpack.core.models import is_local_model


@lru_cache(maxsize=2)
def load_punctuator(spec: str, threads: int = 1):
    """Load a FunASR punctuation model once per process: a hub id (``ct-punc``) or a local folder.

    Raises:
        ValueError: a local-looking path that is not a model folder.
    """
    if is_local_model(spec) and not (Path(spec).expanduser() / "config.yaml").is_file():
        raise ValueError(f"stitch.punc_model = {spec!r} is not a punctuation model folder (no config.yaml); "
                         "give a FunASR model id such as ct-punc or a folder holding config.yaml and model.pt")
    return funasr_attr("", "AutoModel")(model=spec, disable_update=True, ncpu=threads, device="cpu", log_level="ERROR")


def punctuate(texts: list[str], spec: str) -> list[str]:
    """Punctuate each text; empty texts stay empty. Results are mapped by position."""
    model = load_punctuator(spec)
    out = []
    for text in texts:
        if not text.strip():
            out.append(text)
            continue
        res = model.generate(input=text)
        out.append(res[0]["text"] if res and "text" in res[0] else text)
    return out

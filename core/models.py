"""The one rule for a config key that names a model: a local folder, or an id on FunASR's model hub.

``asr.model``, ``speakers.model`` (campp) and ``stitch.punc_model`` take either; ``vad.fsmn_model`` a
folder only. A spec is a local folder when it is written as a path (``/``, ``./``, ``../``, ``~``) or
names something that exists; anything else is a hub id, fetched by FunASR when the model loads.
"""

from __future__ import annotations

from pathlib import Path

from vadpack.core.funasr import HUB_ID, short_model_names

PATH_PREFIXES = ("/", "./", "../", "~")


def is_local_model(spec: str, base_dir: str | Path = ".") -> bool:
    """Whether ``spec`` names a local folder rather than a hub id (torch-free, FunASR-free).

    Args:
        spec: the config value.
        base_dir: the folder a relative spec is written against (the current folder by default).
    """
    return spec.startswith(PATH_PREFIXES) or (Path(base_dir) / Path(spec).expanduser()).exists()


def model_spec_problem(key: str, spec: str, base_dir: str = ".") -> str | None:
    """None when ``spec`` can name a model: a local folder that exists, or a well-formed hub id that,
    without a namespace, FunASR has registered; else one line that names ``key`` and what to do.

    ``models/tiny`` has the form of a hub id (namespace/name); when a folder ``models`` exists
    beside the config or here, it was meant as a path to a folder that is not there.
    """
    no_folder = f"{key} = {spec!r}: no such model folder; fix the path, or give a FunASR hub id"
    head = spec.split("/", 1)[0]
    if is_local_model(spec) or ("/" in spec and any((Path(d) / head).is_dir() for d in (base_dir, "."))):
        return None if Path(spec).expanduser().is_dir() else no_folder
    if not HUB_ID.fullmatch(spec):
        return f"{no_folder} (a hub id is a name such as paraformer-zh, or namespace/name)"
    names = short_model_names()
    if "/" not in spec and names and spec not in names:
        return f"{key} = {spec!r} is not a folder and not a FunASR model name; give a model folder, a " \
               f"namespace/name hub id, or one of {', '.join(sorted(names))}"
    return None

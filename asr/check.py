"""What the asr stage needs checked before any work: the model folder holds what its family needs (or
the hub id is one FunASR can fetch), the device exists and takes the precision, and the settings suit
the model's family."""

from __future__ import annotations

from vadpack.asr.config import AsrConfig
from vadpack.core.configtools import ConfigError
from vadpack.core.device import device_problem, resolve_device
from vadpack.core.models import is_local_model, model_spec_problem


def check(section: AsrConfig, base_dir: str = ".") -> list[str]:
    """One line per problem with the ``asr`` section that only the disk or the machine can tell."""
    model_problem = _model_problem(section.model, base_dir)
    problems = [p for p in (model_problem, _device_problem(section)) if p]
    if model_problem is None:
        problems += filter(None, [_family_problem(section)])
    return problems


def _model_problem(spec: str, base_dir: str) -> str | None:
    """The model folder holds what decoding needs (``asr.model.check_model_folder``), or the hub id is
    one FunASR can fetch."""
    if not is_local_model(spec):
        return model_spec_problem("asr.model", spec, base_dir)
    from vadpack.asr.model import check_model_folder

    try:
        check_model_folder(spec)
    except Exception as e:  # noqa: BLE001 - any reason the folder cannot load is the person's to fix
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return text if text.startswith("asr.model") else f"asr.model: {text}"
    return None


def _device_problem(section: AsrConfig) -> str | None:
    """``asr.device`` names a device this machine has, and it supports ``asr.dtype``."""
    problem = device_problem(section.device, "asr.device")
    if problem or section.device in ("auto", "cpu"):
        return problem
    from vadpack.asr.model import resolve_dtype

    try:
        resolve_dtype(section.dtype, resolve_device(section.device, "asr.device"))
    except ValueError as e:
        return str(e)
    return None


def guess_family(spec: str) -> type | None:
    """The model family a hub id names (``paraformer`` or ``sensevoice`` in it), or None: then it is
    known only once the model loads."""
    from vadpack.asr.family import FAMILY_CLASSES

    name = spec.lower()
    return next((f for f in FAMILY_CLASSES if f.name in name), None)


def _family_problem(section: AsrConfig) -> str | None:
    """The asr settings suit the model's family (``asr.language`` only for SenseVoice, hotwords only for
    SeACo-Paraformer). A folder's class is read from its config.yaml; a hub id's family is guessed from
    its name (:func:`guess_family`), else it is checked when the model loads."""
    from vadpack.asr.family import FAMILIES
    from vadpack.asr.model import model_class_of_folder

    spec = section.model
    model_class: str | None = None
    if is_local_model(spec):
        model_class = model_class_of_folder(spec)
        family = FAMILIES[model_class]
    else:
        family = guess_family(spec)
        if family is None:
            return None
    try:
        family.check_settings(section, model_class)
    except ConfigError as e:
        return str(e)
    return None

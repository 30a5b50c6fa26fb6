"""Model packages: a self-contained folder that decodes without the training data folder.

``export_package(checkpoint, out_dir)`` writes:

- ``model.pt``: the checkpoint without its optimizer state (``torch.load(weights_only=True)``
  loads it once ``cif_plugin`` is imported), weights in float32 or float16;
- ``dict.txt`` (the dictionary), ``config.yaml`` (the data config: feature size and the
  transforms the model was trained with) and any file the config names (global CMVN statistics,
  a sentencepiece model);
- ``model.json``: family, architecture, sample rate, seconds per encoder frame, vocabulary size,
  source checkpoint, creation time, weight dtype, and the SHA-256 of every file, checked on load.
"""

import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict

import torch
import yaml

from ..runtime.bundle import check_listed_files, file_sha256, read_manifest
from ..tasks.fbank_features import FRAME_SHIFT_SECONDS, SAMPLE_RATE

__all__ = ["PACKAGE_FORMAT", "PackageError", "export_package", "is_package", "verify_package"]

PACKAGE_FORMAT = 1
MANIFEST = "model.json"
WEIGHTS = "model.pt"
CONFIG = "config.yaml"
_CONFIG_FILE_KEYS = (("global_cmvn", "stats_npz_path"), ("bpe_tokenizer", "sentencepiece_model"))


class PackageError(ValueError):
    """A package that cannot be used; the message names the file and what is wrong."""


def is_package(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def verify_package(folder: Path) -> Dict:
    """The package's ``model.json``, after checking that every file it lists is there, unchanged."""
    manifest = read_manifest(Path(folder) / MANIFEST, PACKAGE_FORMAT, PackageError, "package")
    check_listed_files(folder, manifest["files"], PackageError, "scripts/export_model.py")
    return manifest


def _data_config(data_dir: Path, config_name: str, out_dir: Path) -> Dict:
    """The training data config, with the files it names copied beside it and named relatively."""
    config = yaml.safe_load((data_dir / config_name).read_text(encoding="utf-8"))
    config.pop("audio_root", None)
    for section, key in _CONFIG_FILE_KEYS:
        if isinstance(config.get(section), dict) and config[section].get(key):
            source = Path(config[section][key])
            source = source if source.is_absolute() else data_dir / source
            shutil.copyfile(source, out_dir / source.name)
            config[section][key] = source.name
    return config


def export_package(checkpoint: Path, out_dir: Path, dtype: str = "float32", data_dir: Path = None) -> Dict:
    """Write the package of a fairseq checkpoint of one of our models; returns its manifest.

    Args:
        checkpoint (Path): a checkpoint (or an averaged one) of s2t_cif_transformer,
            s2t_ctc_conformer or s2t_asg_conformer.
        out_dir (Path): the package folder (replaced atomically if it exists).
        dtype (str): ``float32`` or ``float16`` for the weights.
        data_dir (Path, optional): the training data folder (dict.txt, config.yaml); default the
            checkpoint's own.
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    from fairseq import checkpoint_utils
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cfg = state["cfg"]
    task_cfg, model_cfg = cfg["task"], cfg["model"]
    data_dir = Path(data_dir or _get(task_cfg, "data"))
    config_name = _get(task_cfg, "config_yaml") or CONFIG
    arch = _get(model_cfg, "arch") or _get(model_cfg, "_name")
    if not (data_dir / config_name).is_file():
        raise FileNotFoundError(
            f"{data_dir / config_name}: the checkpoint's data config is missing: pass data_dir"
        )
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(data_dir)}
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        config = _data_config(data_dir, config_name, staging)
        vocabulary = config.get("vocab_filename", "dict.txt")
        shutil.copyfile(data_dir / vocabulary, staging / vocabulary)
        (staging / CONFIG).write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        target = torch.float16 if dtype == "float16" else torch.float32
        weights = {k: v.to(target) if v.is_floating_point() else v for k, v in state["model"].items()}
        package_state = {
            "cfg": cfg,
            "model": weights,
            "optimizer_history": state.get("optimizer_history", []),
            "extra_state": {"epoch": state.get("extra_state", {}).get("epoch", 0)},
            "last_optimizer_state": None,
        }
        torch.save(package_state, staging / WEIGHTS)
        manifest = {
            "format": PACKAGE_FORMAT,
            "family": ARCH_MODEL_NAME_REGISTRY[arch],
            "arch": arch,
            "sample_rate": SAMPLE_RATE,
            "frame_shift_seconds": round(FRAME_SHIFT_SECONDS * models[0].encoder.frame_stride, 6),
            "vocabulary_size": len(task.target_dictionary),
            "dtype": dtype,
            "source_checkpoint": str(checkpoint.resolve()),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "files": {p.name: file_sha256(p) for p in sorted(staging.iterdir())},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _get(config, name):
    return config.get(name) if isinstance(config, dict) else getattr(config, name, None)

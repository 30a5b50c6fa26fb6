"""An exported ONNX model folder (``scripts/export_onnx.py``, docs/onnx.md) and its check on load.

The folder holds ``onnx_model.json`` (the manifest: family, dictionary, feature transforms, search
settings and the SHA-256 of every file), ``encoder.onnx``, for CIF models ``decoder_step.onnx``,
for CIF models exported with a language model ``lm_step.onnx`` (shallow fusion), for ASG models
``transitions.npy`` (the transition matrix), and any file a feature transform reads (global CMVN
statistics). Loading checks every listed file
against its digest and every graph's inputs and outputs against what its family's search reads, so
a corrupt, truncated or mismatched folder fails with a message naming the file.
"""

import hashlib
import json
from pathlib import Path
from typing import Dict, Sequence, Type

__all__ = [
    "ONNX_MANIFEST",
    "ONNX_FORMAT",
    "GRAPH_SIGNATURES",
    "LM_GRAPH",
    "LM_SIGNATURE",
    "BundleError",
    "check_listed_files",
    "file_sha256",
    "is_onnx_bundle",
    "read_bundle_manifest",
    "read_manifest",
    "open_session",
]

ONNX_MANIFEST = "onnx_model.json"
ONNX_FORMAT = 1

# (inputs, outputs) of each graph, by family.
GRAPH_SIGNATURES: Dict[str, Dict[str, tuple]] = {
    "cif": {
        "encoder.onnx": (
            ("features", "lengths"),
            ("cif_out", "fire_counts", "fire_frames", "cif_weights", "encoder_lengths", "ctc_log_probs"),
        ),
        "decoder_step.onnx": (("prev_tokens", "prev_cif", "cif", "step", "cache"), ("logits", "next_cache")),
    },
    "ctc": {"encoder.onnx": (("features", "lengths"), ("ctc_log_probs", "encoder_lengths"))},
    "asg": {"encoder.onnx": (("features", "lengths"), ("emissions", "encoder_lengths"))},
}

# a CIF model exported with its fusion LM (the manifest's "lm" entry says so)
LM_GRAPH = "lm_step.onnx"
LM_SIGNATURE = (("prev_tokens", "step", "cache"), ("logits", "next_cache"))


class BundleError(ValueError):
    """An ONNX model folder that cannot be used; the message names the file and what is wrong."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_onnx_bundle(path: Path) -> bool:
    return (Path(path) / ONNX_MANIFEST).is_file()


def read_manifest(path: Path, expected_format: int, error: Type[ValueError], kind: str) -> Dict:
    """A JSON manifest of ``expected_format``; ``error`` (naming ``path``) when it is not one."""
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as problem:
        raise error(f"{path}: not a readable {kind} manifest ({problem})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise error(f"{path}: {kind} format {found}, expected {expected_format}")
    return manifest


def check_listed_files(
    folder: Path, files: Dict[str, str], error: Type[ValueError], export_script: str
) -> None:
    """Every file of ``files`` (name -> SHA-256) is in ``folder``, unchanged; ``error`` names the first
    that is not."""
    for name, digest in files.items():
        path = Path(folder) / name
        if not path.is_file():
            raise error(f"{path}: missing (re-export the model with {export_script})")
        if file_sha256(path) != digest:
            raise error(f"{path}: altered since the model was exported (its SHA-256 differs)")


def read_bundle_manifest(folder: Path) -> Dict:
    """The folder's manifest, after checking that every file it lists is there and unchanged."""
    folder = Path(folder)
    path = folder / ONNX_MANIFEST
    manifest = read_manifest(path, ONNX_FORMAT, BundleError, "ONNX model")
    family = manifest.get("family")
    if family not in GRAPH_SIGNATURES:
        raise BundleError(
            f"{path}: unknown model family {family!r} (expected one of {sorted(GRAPH_SIGNATURES)})"
        )
    files = manifest.get("files", {})
    needed = list(GRAPH_SIGNATURES[family]) + ([LM_GRAPH] if "lm" in manifest else [])
    for optional in ("ngram", "vad"):
        if isinstance(manifest.get(optional), dict):
            needed.append(manifest[optional].get("file"))
    for name in needed:
        if name not in files:
            raise BundleError(f"{path}: a {family} model needs {name}, which the manifest does not list")
    check_listed_files(folder, files, BundleError, "scripts/export_onnx.py")
    return manifest


# onnxruntime 1.32's fused SkipLayerNormalization took 310 us where the residual Add and the
# LayerNormalization it replaces take about 60 us together on a (1, 299, 256) input (the int8 paper
# encoder, one thread: 2.8 ms of its 41 ms); benchmarks/bench_onnx.py.
_DISABLED_FUSIONS = ["SkipLayerNormFusion"]


def open_session(path: Path, signature: Sequence[tuple], threads: int = 0):
    """An onnxruntime session of ``path`` whose input and output names are ``signature``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=_DISABLED_FUSIONS
        )
    except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
        raise BundleError(f"{path}: onnxruntime cannot load it ({error})") from None
    inputs = tuple(node.name for node in session.get_inputs())
    outputs = tuple(node.name for node in session.get_outputs())
    if (inputs, outputs) != tuple(signature):
        raise BundleError(
            f"{path}: inputs {inputs} and outputs {outputs} are not the expected "
            f"{signature[0]} -> {signature[1]}"
        )
    return session

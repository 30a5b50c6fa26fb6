"""Export a trained model to an ONNX folder that decodes with onnxruntime alone (docs/onnx.md).

``export_onnx(model, out_dir)`` traces the family's graphs (``graphs.py``) with a 3 s input and
dynamic batch and time axes, checks each against PyTorch on a longer batch with padding, and writes
the manifest ``cif_plugin.runtime`` reads: the dictionary, the evaluation feature transforms, the
encoder frame length, the search settings, and the SHA-256 of every file. ``quantize="int8"``
rewrites the MatMul and Gemm weights to int8 with onnxruntime's dynamic quantisation.
"""

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..generation.cif_generator import CifGenerator
from ..generation.ctc_generator import CtcGenerator
from ..generation.prefix_lm_scorers import FairseqLmPrefixScorer
from ..inference.recognizer import Recognizer
from ..inference.speech_regions import installed_silero_vad_model
from ..models.s2t_asg_conformer import S2TAsgConformerModel
from ..models.s2t_cif_transformer import S2TCifTransformerModel
from ..models.s2t_ctc_conformer import S2TCtcConformerModel
from ..modules.cif import DECODING_TAIL_THRESHOLD
from ..ops.ctc import ctc_blank_index
from ..runtime.bundle import GRAPH_SIGNATURES, LM_GRAPH, LM_SIGNATURE, ONNX_FORMAT, ONNX_MANIFEST, file_sha256
from ..tasks.fbank_features import FRAME_SHIFT_SECONDS, NUM_MEL_BINS, SAMPLE_RATE
from .graphs import (
    AsgEncoderGraph,
    CifDecoderStepGraph,
    CifEncoderGraph,
    CtcEncoderGraph,
    LanguageModelStepGraph,
    kept_position_projections,
)

__all__ = ["DEFAULT_OPSET", "export_onnx", "export_recognizer"]

DEFAULT_OPSET = 17
EXPORT_SECONDS = 3.0  # the traced input: the graphs must not depend on it
# first-stage encoder frames (about 10 s) whose projected relative encodings the encoder graph keeps
# as constants (about 9 MB for the paper's model); longer inputs project only their outer distances
KEPT_POSITION_FRAMES = 512
NGRAM_FILE = "ngram_lm.arpa"  # a CTC model's n-gram LM, copied as it is (ARPA or KenLM binary)
VAD_FILE = "vad.onnx"  # silero-vad's model, which splits long inputs at pauses (MIT licence)
_CHECK_TOLERANCE = 1e-4  # relative to the output's largest magnitude, at least 1
_STEP_AXES = {  # what the decoder-step and LM-step graphs share: rows (utterances x beams) and steps
    "prev_tokens": {0: "rows"},
    "cache": {2: "rows", 4: "steps"},
    "logits": {0: "rows"},
    "next_cache": {2: "rows", 4: "next_steps"},
}
_ENCODER_AXES = {
    "features": {0: "batch", 1: "frames"},
    "lengths": {0: "batch"},
    "cif_out": {0: "batch", 1: "tokens"},
    "fire_counts": {0: "batch"},
    "fire_frames": {0: "batch", 1: "tokens"},
    "cif_weights": {0: "batch", 1: "encoder_frames"},
    "encoder_lengths": {0: "batch"},
    "ctc_log_probs": {0: "batch", 1: "encoder_frames"},
    "emissions": {0: "batch", 1: "encoder_frames"},
}


def _family(model) -> str:
    if isinstance(model, S2TCifTransformerModel):
        if not hasattr(model.decoder, "embed_tokens"):
            raise ValueError(
                "the ONNX export covers the autoregressive CIF decoder; this model's decoder is NAR"
            )
        return "cif"
    if isinstance(model, S2TCtcConformerModel):
        return "ctc"
    if isinstance(model, S2TAsgConformerModel):
        return "asg"
    raise ValueError(f"no ONNX export for {type(model).__name__}")


def _feature_transforms(recognizer: Recognizer, out_dir: Path) -> List[Dict]:
    """The evaluation feature transforms as the runtime reads them (global CMVN statistics copied)."""
    transforms = []
    composite = recognizer.features.transforms
    for transform in composite.transforms if composite is not None else []:
        name = type(transform).__name__
        if name == "UtteranceCMVN":
            transforms.append(
                {
                    "name": "utterance_cmvn",
                    "norm_means": transform.norm_means,
                    "norm_vars": transform.norm_vars,
                }
            )
        elif name == "GlobalCMVN":
            np.savez(out_dir / "global_cmvn.npz", mean=transform.mean, std=transform.std)
            transforms.append({"name": "global_cmvn", "file": "global_cmvn.npz"})
        else:
            raise ValueError(
                f"the ONNX runtime has no {name} feature transform (utterance or global CMVN only)"
            )
    return transforms


def _export(
    graph: torch.nn.Module, args: tuple, path: Path, family: str, dynamic_axes: Dict, opset: int
) -> None:
    inputs, outputs = LM_SIGNATURE if path.name == LM_GRAPH else GRAPH_SIGNATURES[family][path.name]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            graph,
            args,
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )


def _check(graph: torch.nn.Module, path: Path, *examples: tuple) -> None:
    """The exported graph against PyTorch on each example's inputs (other shapes than the traced one)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for args in examples:
        with torch.no_grad():
            expected = graph(*args)
        feeds = {node.name: arg.numpy() for node, arg in zip(session.get_inputs(), args, strict=True)}
        for node, want, got in zip(session.get_outputs(), expected, session.run(None, feeds), strict=True):
            want = want.detach().numpy()
            if want.shape != got.shape:
                raise RuntimeError(f"{path}: output {node.name} has shape {got.shape}, PyTorch {want.shape}")
            error = np.abs(want.astype(np.float64) - got).max(initial=0)
            scale = max(1.0, float(np.abs(want).max(initial=0)))  # float32 rounding grows with the values
            if error > _CHECK_TOLERANCE * scale:
                raise RuntimeError(
                    f"{path}: output {node.name} differs from PyTorch after export by {error:.3g} "
                    f"(largest value {scale:.3g})"
                )


def _encoder_graph(model, family: str, tail_threshold: float) -> torch.nn.Module:
    if family == "cif":
        return CifEncoderGraph(model, tail_threshold).eval()
    return (CtcEncoderGraph if family == "ctc" else AsgEncoderGraph)(model).eval()


def _export_decoder_step(model, out_dir: Path, opset: int) -> Dict:
    decoder = model.decoder
    graph = CifDecoderStepGraph(decoder).eval()
    attention = decoder.layers[0].self_attn
    layers, heads, head_dim = len(decoder.layers), attention.num_heads, attention.head_dim
    cif_dim = decoder.input_proj.in_features - decoder.embed_tokens.embedding_dim

    def example(rows: int, steps: int):
        generator = torch.Generator().manual_seed(rows * 100 + steps)
        return (
            torch.randint(4, len(decoder.dictionary), (rows,), generator=generator),
            torch.randn(rows, cif_dim, generator=generator),
            torch.randn(rows, cif_dim, generator=generator),
            torch.tensor(steps),
            torch.randn(layers, 2, rows, heads, steps, head_dim, generator=generator),
        )

    axes = {**_STEP_AXES, "prev_cif": {0: "rows"}, "cif": {0: "rows"}}
    _export_step_graph(graph, example, out_dir / "decoder_step.onnx", axes, opset)
    return {
        "layers": layers,
        "heads": heads,
        "head_dim": head_dim,
        "cif_dim": cif_dim,
        "max_steps": decoder.max_target_positions,
    }


def _export_step_graph(graph, example, path: Path, axes: Dict, opset: int) -> None:
    """Trace a step graph with ``example(rows, cached_steps)`` inputs for 2 rows and 3 cached
    steps, and check it on other row and step counts (none cached, and more)."""
    _export(graph, example(2, 3), path, "cif", axes, opset)
    _check(graph, path, example(5, 0), example(3, 7))


def _export_lm_step(lm, max_steps: int, out_dir: Path, opset: int) -> Dict:
    """``lm_step.onnx``, one step of the fusion LM over its key/value cache; returns its shape."""
    decoder = lm.decoder
    max_steps = min(max_steps, decoder.max_positions())
    graph = LanguageModelStepGraph(lm, max_steps).eval()
    attention = decoder.layers[0].self_attn
    layers, heads, head_dim = len(decoder.layers), attention.num_heads, attention.head_dim

    def example(rows: int, steps: int):
        generator = torch.Generator().manual_seed(rows * 100 + steps)
        return (
            torch.randint(4, len(decoder.dictionary), (rows,), generator=generator),
            torch.tensor(steps),
            torch.randn(layers, 2, rows, heads, steps, head_dim, generator=generator),
        )

    _export_step_graph(graph, example, out_dir / LM_GRAPH, _STEP_AXES, opset)
    return {"layers": layers, "heads": heads, "head_dim": head_dim, "max_steps": max_steps}


def _fusion_lm(generator):
    """The fairseq LM a CIF generator fuses, or the one behind a CTC generator's prefix scorer."""
    if isinstance(generator, CifGenerator):
        return generator.lm
    if isinstance(generator, CtcGenerator) and isinstance(generator.scorer, FairseqLmPrefixScorer):
        return generator.scorer.lm
    return None


def _quantize(out_dir: Path, names: List[str]) -> None:
    """int8 weights for every MatMul and Gemm whose weight is a constant.

    The quantiser only sees a weight that feeds its MatMul directly; a traced graph can reach it
    through a transpose or a reshape (a kernel-1 convolution's weight), so the graph's constants are
    folded first (onnxruntime's portable "basic" optimisations, without shape inference).
    """
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    for name in names:
        path = out_dir / name
        folded, quantized = path.with_suffix(".folded.onnx"), path.with_suffix(".int8.onnx")
        previous = logging.root.manager.disable
        logging.disable(logging.INFO)  # the quantiser logs a line per tensor to the root logger
        try:
            quant_pre_process(str(path), str(folded), skip_symbolic_shape=True)
            quantize_dynamic(
                str(folded),
                str(quantized),
                op_types_to_quantize=["MatMul", "Gemm"],
                weight_type=QuantType.QInt8,
            )
        finally:
            logging.disable(previous)
        folded.unlink()
        os.replace(quantized, path)


def export_onnx(
    model_path: Path,
    out_dir: Path,
    opset: int = DEFAULT_OPSET,
    quantize: Optional[str] = None,
    tail_threshold: float = DECODING_TAIL_THRESHOLD,
    data: Optional[Path] = None,
    lm_path: Optional[Path] = None,
    lm_weight: float = 0.0,
    ngram_lm_path: Optional[Path] = None,
    ctc_token_bonus: float = 0.0,
) -> Dict:
    """Export a package or checkpoint (any family) to ``out_dir``; returns the manifest.

    Args:
        model_path: a model package (``scripts/export_model.py``) or a checkpoint.
        out_dir: the folder to write (replaced atomically when it exists).
        opset (int): ONNX opset of the graphs.
        quantize (str, optional): "int8": dynamic int8 quantisation of the MatMul/Gemm weights.
        tail_threshold (float): CIF models: the tail firing threshold baked into the encoder graph.
        data: a checkpoint's data folder, if not the one it was trained on.
        lm_path, lm_weight: CIF and CTC models: a fairseq LM over the same dictionary, exported
            as ``lm_step.onnx`` and fused with this weight by the runtime's searches (as
            ``--lm-path`` and ``--lm-weight`` do in PyTorch); a zero weight exports no LM.
        ngram_lm_path, ctc_token_bonus: CTC models: an n-gram LM (copied into the folder) fused
            with ``lm_weight`` in the runtime's prefix beam search, and its per-label bonus.
    """
    recognizer = Recognizer.from_pretrained(
        model_path,
        data=data,
        lm_path=str(lm_path) if lm_path else None,
        ngram_lm_path=str(ngram_lm_path) if ngram_lm_path else None,
        lm_weight=lm_weight,
        ctc_token_bonus=ctc_token_bonus,
    )
    return export_recognizer(recognizer, out_dir, opset, quantize, tail_threshold, source=str(model_path))


def export_recognizer(
    recognizer: Recognizer,
    out_dir: Path,
    opset: int = DEFAULT_OPSET,
    quantize: Optional[str] = None,
    tail_threshold: float = DECODING_TAIL_THRESHOLD,
    source: Optional[str] = None,
) -> Dict:
    """:func:`export_onnx` of a loaded recogniser's model (``source``: its origin, for the manifest)."""
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    model, dictionary = recognizer.model, recognizer.dictionary
    family = _family(model)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        manifest = _write_bundle(
            recognizer, model, dictionary, family, staging, opset, quantize, tail_threshold
        )
        manifest["source"] = source
        manifest_text = json.dumps(manifest, ensure_ascii=False, indent=1)
        (staging / ONNX_MANIFEST).write_text(manifest_text, encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _write_bundle(
    recognizer, model, dictionary, family, out_dir: Path, opset, quantize, tail_threshold
) -> Dict:
    frames = int(EXPORT_SECONDS / FRAME_SHIFT_SECONDS)
    graph = _encoder_graph(model, family, tail_threshold)
    inputs, outputs = GRAPH_SIGNATURES[family]["encoder.onnx"]
    axes = {name: _ENCODER_AXES[name] for name in inputs + outputs if name in _ENCODER_AXES}
    generator = torch.Generator().manual_seed(0)
    traced = (torch.randn(1, frames, NUM_MEL_BINS, generator=generator), torch.tensor([frames]))
    with kept_position_projections(model.encoder, KEPT_POSITION_FRAMES):
        _export(graph, traced, out_dir / "encoder.onnx", family, axes, opset)
    longer = torch.randn(3, 2 * frames + 37, NUM_MEL_BINS, generator=generator)
    beyond = 4 * KEPT_POSITION_FRAMES + 37  # past the kept encodings for a front end of stride 2 or 4
    _check(
        graph,
        out_dir / "encoder.onnx",
        (longer, torch.tensor([2 * frames + 37, frames + 5, 2 * frames])),
        (torch.randn(1, beyond, NUM_MEL_BINS, generator=generator), torch.tensor([beyond])),
    )
    manifest = {
        "format": ONNX_FORMAT,
        "family": family,
        "architecture": getattr(recognizer.task.args, "arch", None),
        "sample_rate": SAMPLE_RATE,
        "num_mel_bins": NUM_MEL_BINS,
        "frame_seconds": recognizer.frame_seconds,
        "frame_stride": model.encoder.frame_stride,
        "feature_transforms": _feature_transforms(recognizer, out_dir),
        "symbols": list(dictionary.symbols),
        "special": {
            "bos": dictionary.bos(),
            "pad": dictionary.pad(),
            "eos": dictionary.eos(),
            "unk": dictionary.unk(),
        },
        "sentencepiece": recognizer.bpe,
        "opset": opset,
        "quantized": quantize,
    }
    if family == "cif":
        manifest["decoder"] = _export_decoder_step(model, out_dir, opset)
        manifest["tail_threshold"] = tail_threshold
        manifest["blank"] = ctc_blank_index(dictionary)
    elif family == "ctc":
        manifest["blank"] = ctc_blank_index(dictionary)
    else:
        manifest["replabels"] = list(model.replabels)
        np.save(out_dir / "transitions.npy", model.transitions.detach().float().numpy())
    options = recognizer.options
    if options.lm_weight and (
        (options.lm_path and family == "asg") or (options.ngram_lm_path and family != "ctc")
    ):
        raise ValueError(
            "the ONNX export fuses a fairseq LM (lm_path) with CIF and CTC models and an n-gram LM "
            "(ngram_lm_path) with CTC models"
        )
    if family == "ctc":
        manifest["ctc_token_bonus"] = options.ctc_token_bonus
        if options.ngram_lm_path and options.lm_weight:
            shutil.copyfile(options.ngram_lm_path, out_dir / NGRAM_FILE)
            manifest["ngram"] = {"file": NGRAM_FILE, "weight": options.lm_weight}
    lm = _fusion_lm(recognizer.generator)
    if lm is not None:
        max_steps = manifest["decoder"]["max_steps"] if family == "cif" else lm.decoder.max_positions()
        manifest["lm"] = _export_lm_step(lm, max_steps, out_dir, opset)
        manifest["lm"]["weight"] = recognizer.generator.lm_weight
    shutil.copyfile(installed_silero_vad_model(), out_dir / VAD_FILE)
    manifest["vad"] = {"file": VAD_FILE}
    if quantize:
        _quantize(out_dir, list(GRAPH_SIGNATURES[family]) + ([LM_GRAPH] if lm is not None else []))
    manifest["files"] = {path.name: file_sha256(path) for path in sorted(out_dir.iterdir()) if path.is_file()}
    return manifest

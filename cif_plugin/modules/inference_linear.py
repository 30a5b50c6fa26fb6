"""``nn.functional.linear`` for inference on the CPU, on weight copies laid out for its fastest kernels.

With gradients off, on the CPU in float32, ``linear`` multiplies by a copy of the weight made once
and kept until the weight changes (an in-place write or a ``.data`` swap; every optimiser step
drops all copies):

- one input row (a greedy decoding step): a contiguous (in, out) transpose, which the matrix-vector
  kernel reads about twice as fast as ``nn.Linear``'s (out, in) layout (the step's cost is reading
  the weights);
- more rows: oneDNN's prepacked layout (``torch.ops.mkldnn``, what torch's own CPU compiler uses),
  10-35 % faster than the stock kernel on the encoder's and the beam's shapes.

Same sums, other rounding (within 1e-5 of ``nn.functional.linear``, tests/test_inference_linear.py).
Anything else (training, half precision, other devices, tracing for graph export) is plain
``nn.functional.linear``. The copies cost memory: one more copy of each weight used this way. See
benchmarks/bench_decode.py.
"""

import weakref
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

__all__ = ["linear", "apply_linear", "transposed"]

_PACK_HINT = 64  # rows oneDNN tunes the packed layout for
_COPIES: Dict[Tuple[int, str], tuple] = {}  # (id(weight), layout) -> (weak reference, stamp, copy)
_onednn_works = hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available()


def _forget_copies(*unused) -> None:
    _COPIES.clear()


# Optimisers (fairseq's Adam among them) update ``param.data`` in place, which changes neither the
# data pointer nor the parameter's version counter: every optimiser step drops the copies, or the
# validation inside a training run would read the weights of an earlier step.
register_optimizer_step_post_hook(_forget_copies)


def _copy(weight: Tensor, layout: str) -> Tensor:
    """The weight in ``layout`` ("transposed" or "onednn"), remade after any change to the weight."""
    # _version counts in-place writes; data_ptr catches a swapped .data
    stamp = (weight.data_ptr(), weight._version)
    key = (id(weight), layout)
    cached = _COPIES.get(key)
    if cached is None or cached[0]() is not weight or cached[1] != stamp:
        detached = weight.detach().flatten(1)
        if layout == "transposed":
            copy = detached.t().contiguous()
        else:
            copy = torch.ops.mkldnn._reorder_linear_weight(detached, _PACK_HINT)
        reference = weakref.ref(weight, lambda _, key=key: _COPIES.pop(key, None))
        cached = (reference, stamp, copy)
        _COPIES[key] = cached
    return cached[2]


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``nn.functional.linear(x, weight, bias)``: (..., in) -> (..., out).

    ``weight`` is (out, in), or a kernel-1 convolution's (out, in, 1) (the convolution as the linear
    map it is).
    """
    global _onednn_works
    plain = torch.is_grad_enabled() or x.device.type != "cpu" or torch.jit.is_tracing()
    if plain or x.dtype != torch.float32 or weight.dtype != x.dtype:
        return nn.functional.linear(x, weight.flatten(1), bias)
    rows = x.numel() // x.size(-1)
    flat = x.reshape(rows, x.size(-1))
    if rows > 1 and _onednn_works:
        try:
            out = torch.ops.mkldnn._linear_pointwise(flat, _copy(weight, "onednn"), bias, "none", [], "")
            return out.view(*x.shape[:-1], weight.size(0))
        except RuntimeError:  # a torch build without the op's kernel: use the others from now on
            _onednn_works = False
    transposed = _copy(weight, "transposed")
    out = torch.addmm(bias, flat, transposed) if bias is not None else torch.matmul(flat, transposed)
    return out.view(*x.shape[:-1], weight.size(0))


def apply_linear(module: nn.Linear, x: Tensor) -> Tensor:
    """``module(x)`` through :func:`linear`."""
    return linear(x, module.weight, module.bias)


def transposed(weight: Tensor) -> Tensor:
    """A contiguous (in, out) copy of an (out, in) weight, kept until the weight changes."""
    return _copy(weight, "transposed")

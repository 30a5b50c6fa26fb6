"""``nn.functional.linear`` for inference on the CPU, on weight copies laid out for its fastest kernels.

With gradients off, on the CPU in float32, ``linear`` multiplies by a contiguous (in, out) copy of
the weight, made once and kept until the weight changes (an in-place write or a ``.data`` swap;
every optimiser step drops all copies). The matrix-vector kernel of a greedy decoding step reads
that layout about twice as fast as ``nn.Linear``'s (out, in) one (the step's cost is reading the
weights), and the matrix products of the beam's 10 rows and of the encoder's hundreds of frames are
up to 25 % and about 5 % faster on it (2-core AVX2 CPU, torch 2.11). (oneDNN's prepacked layout,
``torch.ops.mkldnn``, measured slower than this one on all of those shapes there.)

Same sums, other rounding (within 1e-5 of ``nn.functional.linear``, tests/test_inference_linear.py).
Anything else (training, half precision, other devices, tracing for graph export) is plain
``nn.functional.linear``. The copies cost memory: one more copy of each weight used this way. See
benchmarks/bench_decode.py.
"""

import weakref
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

__all__ = ["linear", "apply_linear", "derived", "stacked", "transposed", "weight_cache"]

_COPIES: Dict[tuple, tuple] = {}  # (id(weight) or ids, layout) -> (weak references, stamps, copy)


def _forget_copies(*unused) -> None:
    _COPIES.clear()


# Optimisers (fairseq's Adam among them) update ``param.data`` in place, which changes neither the
# data pointer nor the parameter's version counter: every optimiser step drops the copies, or the
# validation inside a training run would read the weights of an earlier step.
register_optimizer_step_post_hook(_forget_copies)


def _cached(key: tuple, sources: Tuple[Tensor, ...], make: Callable[[], Tensor]) -> Tensor:
    """``make()``, kept under ``key`` until any of ``sources`` changes or goes."""
    # _version counts in-place writes; data_ptr catches a swapped .data
    stamp = tuple((source.data_ptr(), source._version) for source in sources)
    cached = _COPIES.get(key)
    if (
        cached is None
        or cached[1] != stamp
        or any(ref() is not s for ref, s in zip(cached[0], sources, strict=True))
    ):
        references = tuple(weakref.ref(s, lambda _, key=key: _COPIES.pop(key, None)) for s in sources)
        cached = (references, stamp, make())
        _COPIES[key] = cached
    return cached[2]


def _transposed_copy(weight: Tensor) -> Tensor:
    """The (out, in) weight as a contiguous (in, out) tensor, remade after any change to the weight."""
    return _cached((id(weight), "transposed"), (weight,), lambda: weight.detach().flatten(1).t().contiguous())


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``nn.functional.linear(x, weight, bias)``: (..., in) -> (..., out).

    ``weight`` is (out, in), or a kernel-1 convolution's (out, in, 1) (the convolution as the linear
    map it is).
    """
    plain = torch.is_grad_enabled() or x.device.type != "cpu" or torch.jit.is_tracing()
    if plain or x.dtype != torch.float32 or weight.dtype != x.dtype:
        # a 2-D weight as it is: a traced flatten would hide the parameter from int8 quantisation
        return nn.functional.linear(x, weight if weight.dim() == 2 else weight.flatten(1), bias)
    flat = x if x.dim() == 2 else x.reshape(-1, x.size(-1))
    out = (
        torch.mm(flat, _transposed_copy(weight))
        if bias is None
        else torch.addmm(bias, flat, _transposed_copy(weight))
    )
    return out if x.dim() == 2 else out.view(*x.shape[:-1], weight.size(0))


def apply_linear(module: nn.Linear, x: Tensor) -> Tensor:
    """``module(x)`` through :func:`linear`."""
    return linear(x, module.weight, module.bias)


def derived(sources: Sequence[Tensor], name: str, make: Callable[[], Tensor]) -> Tensor:
    """``make()``, a tensor computed from ``sources``: in inference kept under ``name`` until one of
    them changes (as the weight copies are); with gradients on, computed afresh (differentiable)."""
    if torch.is_grad_enabled():
        return make()
    sources = tuple(sources)
    return _cached((tuple(id(source) for source in sources), name), sources, make)


def stacked(tensors: Sequence[Tensor]) -> Tensor:
    """``torch.cat(tensors)`` (weights stacked along their outputs, or their biases), kept until one
    of them changes: several projections of the same input as one matrix product (a decoder step's
    query, key and value)."""
    tensors = tuple(tensors)
    return derived(tensors, "stacked", lambda: torch.cat(tensors))


def transposed(weight: Tensor) -> Tensor:
    """A contiguous (in, out) copy of an (out, in) weight, kept until the weight changes."""
    return _transposed_copy(weight)


def weight_cache(weight: Tensor) -> Dict:
    """A dict for values computed from ``weight`` in inference, emptied whenever the weight changes
    (in place, by a ``.data`` swap or by an optimiser step), as the weight copies are."""
    return _cached((id(weight), "derived"), (weight,), dict)

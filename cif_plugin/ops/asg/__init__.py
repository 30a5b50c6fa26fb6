"""Our ASG operator: loss (C++/CUDA kernels and a PyTorch reference), Viterbi decoding, replabels."""

from .asg_loss import SCALE_MODES, asg_log_partitions, asg_loss, native_extension
from .reference import reference_log_partitions
from .replabels import pack_replabels, replabel_ids, unpack_replabels
from .viterbi import asg_decode, asg_token_spans, asg_viterbi, collapse_repeats

__all__ = [
    "SCALE_MODES",
    "asg_decode",
    "asg_loss",
    "asg_token_spans",
    "asg_log_partitions",
    "asg_viterbi",
    "collapse_repeats",
    "native_extension",
    "pack_replabels",
    "reference_log_partitions",
    "replabel_ids",
    "unpack_replabels",
]

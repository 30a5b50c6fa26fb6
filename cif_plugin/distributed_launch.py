"""Let ``torchrun ... fairseq-train`` train one model over all its processes, on GPUs or CPUs.

fairseq 0.12 reads torchrun's environment (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ...) only
when ``--distributed-world-size`` is above 1, and its default is the number of GPUs: on CPUs (and
with one GPU per process) every process then trains alone, unaware of the others, on the whole
data, and no gradient is ever shared. Where it does read the environment it picks the device as
``RANK % torch.cuda.device_count()``, which divides by zero without GPUs and is wrong across
machines; and its ``pytorch_ddp`` wrapper passes ``device_ids=[0]``, which torch refuses for a
model on the CPU. With ``--user-dir cif_plugin`` this wraps fairseq's ``infer_init_method`` so
that a torchrun launch always means distributed training: world size and rank from the
environment, device from ``LOCAL_RANK``, and on CPUs fairseq's ``legacy_ddp`` (which all-reduces
the gradients of a whole update after its backward passes) in place of ``pytorch_ddp``. Other
launches (fairseq's own spawning, Slurm, an explicit ``--distributed-init-method``) are left to
fairseq.
"""

import logging
import os
from typing import Optional, Tuple

import torch
from fairseq.distributed import utils as distributed_utils

__all__ = ["install_torchrun_launch", "torchrun_environment"]

logger = logging.getLogger(__name__)

_TORCHRUN_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")


def torchrun_environment() -> Optional[Tuple[int, int, int]]:
    """(world size, rank, local rank) when this process was started by torchrun, else None."""
    if not all(name in os.environ for name in _TORCHRUN_VARIABLES):
        return None
    return int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))


def install_torchrun_launch() -> None:
    """Wrap ``fairseq.distributed.utils.infer_init_method`` once (idempotent)."""
    original = distributed_utils.infer_init_method
    if getattr(original, "_cif_torchrun", False):
        return

    def infer_init_method(cfg, force_distributed=False):
        launch = torchrun_environment()
        explicit = cfg.distributed_init_method is not None or cfg.tpu or cfg.pipeline_model_parallel
        if launch is None or launch[0] == 1 or explicit:
            return original(cfg, force_distributed)
        world_size, rank, local_rank = launch
        on_gpus = torch.cuda.is_available()
        if cfg.distributed_backend == "nccl" and not on_gpus:
            raise SystemExit(
                "torchrun started this fairseq-train without a GPU, but the distributed backend is NCCL: "
                "add --distributed-backend gloo (and --cpu) to train on CPUs"
            )
        cfg.distributed_init_method = "env://"
        cfg.distributed_world_size = world_size
        cfg.distributed_rank = rank
        cfg.device_id = local_rank if on_gpus else 0
        cfg.distributed_no_spawn = True  # torchrun made the processes
        if not on_gpus and cfg.ddp_backend in ("c10d", "pytorch_ddp"):
            logger.info("no GPU: --ddp-backend legacy_ddp in place of %s", cfg.ddp_backend)
            cfg.ddp_backend = "legacy_ddp"
        logger.info("torchrun launch: rank %d of %d (local rank %d)", rank, world_size, local_rank)

    infer_init_method._cif_torchrun = True
    distributed_utils.infer_init_method = infer_init_method

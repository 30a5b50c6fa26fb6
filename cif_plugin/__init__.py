"""cif-hieradist: CIF speech recognition with hierarchical PLM distillation, as a fairseq plugin.

``--user-dir cif_plugin`` imports this package, which registers the package's models, criteria
and tasks with fairseq and lets fairseq checkpoints load with ``torch.load(weights_only=True)``.
The building blocks in ``cif_plugin.modules`` are plain PyTorch and work without fairseq.
"""

from .checkpoint_safety import allow_fairseq_checkpoint_globals

allow_fairseq_checkpoint_globals()

from . import criterions, models, tasks  # noqa: E402,F401  (register with fairseq)

__version__ = "0.1.0"

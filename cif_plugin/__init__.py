"""cif-hieradist: CIF speech recognition with hierarchical PLM distillation, as a fairseq plugin.

``--user-dir cif_plugin`` imports this package, which registers the package's models, criteria
and tasks with fairseq, lets fairseq checkpoints load with ``torch.load(weights_only=True)``, and
makes ``--help`` list the options of the chosen task, model and criterion.
The building blocks in ``cif_plugin.modules`` are plain PyTorch and work without fairseq.
"""

from .checkpoint_safety import allow_fairseq_checkpoint_globals
from .full_help import install_full_help

allow_fairseq_checkpoint_globals()
install_full_help()

from . import criterions, models, tasks  # noqa: E402,F401  (register with fairseq)

__version__ = "0.1.0"

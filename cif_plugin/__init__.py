"""cif-hieradist: CIF speech recognition with hierarchical PLM distillation, as a fairseq plugin.

``--user-dir cif_plugin`` imports this package, which registers the package's models, criteria
and tasks with fairseq, lets fairseq checkpoints load with ``torch.load(weights_only=True)``,
makes ``--help`` list the options of the chosen task, model and criterion, makes a ``torchrun``
launch train one model over all its processes, writes every checkpoint atomically so a killed
training resumes (docs/training.md), and has fairseq-train/-generate report bad data in one line.
The building blocks in ``cif_plugin.modules`` and the operators in ``cif_plugin.ops`` are plain
PyTorch: without fairseq installed they still import (and nothing is registered).
"""

__version__ = "0.1.0"

try:
    import fairseq  # noqa: F401
except ImportError:  # only the fairseq-free parts (modules, ops) are usable
    fairseq = None

if fairseq is not None:
    from .checkpoint_safety import allow_fairseq_checkpoint_globals
    from .checkpoint_writes import install_atomic_checkpoint_copies
    from .cli_errors import install_one_line_data_errors
    from .distributed_launch import install_torchrun_launch
    from .full_help import install_full_help

    allow_fairseq_checkpoint_globals()
    install_atomic_checkpoint_copies()
    install_one_line_data_errors()
    install_full_help()
    install_torchrun_launch()

    from . import criterions, models, tasks  # noqa: E402,F401  (register with fairseq)

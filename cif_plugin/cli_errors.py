"""``fairseq-train`` and ``fairseq-generate`` report bad data as one line, not as a traceback.

A malformed manifest, an utterance with NaN features or a truncated feature store is the user's data,
not a bug in the code: the message (which names the file or utterance and the reason) is what they
need, and fairseq would bury it under a traceback through its trainer or a DataLoader worker. The
plugin is imported while the command line is parsed, before training starts, so it can wrap the
``main`` that ``cli_main`` is about to call.
"""

import sys

from .tasks.data_errors import DATA_ERRORS

__all__ = ["install_one_line_data_errors"]

_ENTRY_POINTS = {"fairseq_cli.train": "fairseq-train", "fairseq_cli.generate": "fairseq-generate"}


def _message(error: BaseException) -> str:
    """The error's own message; for one re-raised from a DataLoader worker, the original's."""
    text = str(error)
    if "Original Traceback" in text:  # torch's ExceptionWrapper: "...\n<module>.<Class>: <message>"
        text = text.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return text


def _reporting_data_errors(main, program: str):
    def main_reporting_data_errors(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except DATA_ERRORS as error:
            sys.exit(f"{program}: error: {_message(error)}")

    main_reporting_data_errors.reports_data_errors = True
    return main_reporting_data_errors


def install_one_line_data_errors() -> None:
    """Wrap the ``main`` of the fairseq command being run, if it is one of ours to wrap (idempotent)."""
    for module in (sys.modules.get("__main__"), *(sys.modules.get(name) for name in _ENTRY_POINTS)):
        if module is None:
            continue
        spec = getattr(module, "__spec__", None)
        name = module.__name__ if spec is None else spec.name
        main = getattr(module, "main", None)
        if name in _ENTRY_POINTS and callable(main) and not getattr(main, "reports_data_errors", False):
            module.main = _reporting_data_errors(main, _ENTRY_POINTS[name])

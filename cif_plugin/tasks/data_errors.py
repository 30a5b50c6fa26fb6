"""Errors about the user's data, each naming the file or utterance and the reason.

``fairseq-train`` and ``fairseq-generate`` print these as one line, without a traceback
(``cif_plugin/cli_errors.py``): they report bad input, not a bug.
"""

__all__ = ["DataError", "UnreadableDataError", "MissingPlmFeaturesError", "DATA_ERRORS"]


class DataError(ValueError):
    """Input data that cannot be used: a malformed manifest, dictionary, feature store or audio."""


class UnreadableDataError(FileNotFoundError):
    """Manifest rows whose features or audio are missing or unreadable."""


class MissingPlmFeaturesError(KeyError):
    """Utterances without PLM features in the store a distillation loss reads."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


DATA_ERRORS = (DataError, UnreadableDataError, MissingPlmFeaturesError)

"""Refuse, naming the utterance and its file, an item whose features cannot be trained on.

Reading every utterance's features at load time would cost a pass over the whole corpus on each
start, so the check happens when fairseq reads an item: empty features, or NaN/inf values (which
would otherwise turn the loss, then every parameter, into NaN a few updates later).
"""

import torch
from fairseq.data import ConcatDataset
from fairseq.data.audio.speech_to_text_dataset import SpeechToTextDataset, SpeechToTextDatasetItem

from .data_errors import DataError

__all__ = ["UnusableFeaturesError", "check_items_when_read", "speech_datasets"]


class UnusableFeaturesError(DataError):
    """An utterance whose features are empty or not finite; the message names it and its file."""


class CheckedSpeechToTextDataset(SpeechToTextDataset):
    """fairseq's speech-to-text dataset whose items are checked as they are read."""

    def __getitem__(self, index: int) -> SpeechToTextDatasetItem:
        item = super().__getitem__(index)
        where = f"utterance {self.ids[index]} ({self.audio_paths[index]})"
        if item.source.shape[0] == 0:
            raise UnusableFeaturesError(f"{where}: no feature frames; re-create them or remove the row")
        not_finite = int((~torch.isfinite(item.source)).sum())
        if not_finite:
            raise UnusableFeaturesError(
                f"{where}: {not_finite} of {item.source.numel()} feature values are NaN or infinite;"
                " re-create its features or remove the row"
            )
        return item


def speech_datasets(dataset) -> list:
    """The speech-to-text datasets in ``dataset``: itself, or the parts of a ConcatDataset."""
    return list(dataset.datasets) if isinstance(dataset, ConcatDataset) else [dataset]


def check_items_when_read(dataset) -> None:
    """Make the speech-to-text datasets in ``dataset`` (one, or a ConcatDataset of them) check items."""
    for part in speech_datasets(dataset):
        if type(part) is SpeechToTextDataset:  # a subclass (multitask) keeps its own __getitem__
            part.__class__ = CheckedSpeechToTextDataset

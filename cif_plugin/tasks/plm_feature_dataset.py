"""Adds pre-computed PLM token features to speech-to-text batches (docs/differences.md, "PLM features")."""

from typing import List

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset
from torch.nn.utils.rnn import pad_sequence

from .plm_feature_store import PlmFeatureStore

__all__ = ["PlmFeatureDataset"]


class PlmFeatureDataset(BaseWrapperDataset):
    """A speech-to-text dataset whose batches also hold ``plm_features`` and ``plm_lengths``.

    ``plm_features`` (B, L+2, D) float32: each utterance's [CLS], token and [SEP] rows, zero-padded,
    in the batch's order; ``plm_lengths`` (B,). Features are read from the store's memory maps when a
    batch is collated, so each data-loader worker reads only its own rows.

    Args:
        dataset: a ``SpeechToTextDataset`` (its ``ids`` key the store).
        store (PlmFeatureStore): features of every utterance of the dataset.
    """

    def __init__(self, dataset, store: PlmFeatureStore):
        super().__init__(dataset)
        self.store = store

    def collater(self, samples: List):
        batch = self.dataset.collater(samples)
        if not batch:
            return batch
        ids = [self.dataset.ids[index] for index in batch["id"].tolist()]
        features = [torch.from_numpy(np.asarray(self.store[utt_id], dtype=np.float32)) for utt_id in ids]
        batch["plm_features"] = pad_sequence(features, batch_first=True)
        batch["plm_lengths"] = torch.tensor([len(f) for f in features])
        return batch

"""Task ``speech_to_text_cif``: fairseq's speech-to-text data for this plugin's models.

Same manifests (TSV: id, audio, n_frames, tgt_text, speaker) and YAML data config as stock
``speech_to_text``: characters from ``vocab_filename``, sentencepiece units when the config names a
``bpe_tokenizer``, CMVN and SpecAugment transforms. The task handles data only: manifests, PLM
features (loaded when the criterion's losses need them) and batching. What a model family needs
from its criterion and how it decodes are the model's business (``AsrModel``). Additions to the
stock task: relative ``audio`` paths are resolved against the data folder unless the config sets
``audio_root`` (so prepared data can be moved); a split fails at load time, naming the file, line or
utterances, when the manifest or dictionary is malformed or rows point to missing or unreadable
features (``manifest_rows``, ``audio_manifest_check``); rows without frames or transcript are skipped
and counted; an item whose features are empty or not finite fails naming the utterance
(``checked_items``); utterances over the size limit are reported by id; and no utterance is lost
to batching: fairseq
0.12's ``batch_by_size`` drops a final batch that is not a multiple of
``--required-batch-size-multiple`` (fairseq issue 5036), so decoding a test set would silently skip
its shortest utterances.
"""

import logging
from collections import Counter
from pathlib import Path

import numpy as np
from fairseq.data.audio.data_cfg import S2TDataConfig
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.speech_to_text import SpeechToTextTask

from ..criterions.asr_criterion import AsrCriterion
from ..generation import DecodingOptions, add_decoding_arguments
from ..models.asr_model import AsrModel, set_options
from .audio_manifest_check import find_unreadable_rows
from .checked_items import check_items_when_read, speech_datasets
from .data_errors import DataError, MissingPlmFeaturesError, UnreadableDataError
from .manifest_rows import CheckedManifestCreator, check_dictionary_file
from .plm_feature_dataset import PlmFeatureDataset
from .plm_feature_store import PlmFeatureStore

logger = logging.getLogger(__name__)

__all__ = ["SpeechToTextCifTask"]

_REPORTED_ROWS = 10


@register_task("speech_to_text_cif")
class SpeechToTextCifTask(SpeechToTextTask):
    """Speech-to-text data for CIF models (the stock task name is taken)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        parser.add_argument(
            "--plm-feature-dir",
            default=None,
            help="PLM feature store for distillation (scripts/extract_plm_features.py); default "
            "<data>/plm_features; read only when the criterion has a distillation loss on",
        )
        add_decoding_arguments(parser)

    @classmethod
    def setup_task(cls, args, **kwargs):
        dict_path = Path(args.data) / S2TDataConfig(Path(args.data) / args.config_yaml).vocab_filename
        if dict_path.is_file():
            check_dictionary_file(dict_path)
        return super().setup_task(args, **kwargs)

    def __init__(self, args, tgt_dict):
        super().__init__(args, tgt_dict)
        self.data_cfg.config.setdefault("audio_root", str(Path(args.data).resolve()))
        if self.data_cfg.global_cmvn_stats_npz:  # a path relative to the data folder, as prep writes it
            self.data_cfg.config["global_cmvn"]["stats_npz_path"] = self.data_cfg.global_cmvn_stats_npz
        self.plm_store = None  # opened by build_criterion when a distillation loss needs it

    def build_criterion(self, args):
        criterion = super().build_criterion(args)
        if isinstance(criterion, AsrCriterion) and criterion.needs_plm_features:
            folder = getattr(self.args, "plm_feature_dir", None) or Path(self.args.data) / "plm_features"
            self.plm_store = PlmFeatureStore(folder)
            expected = getattr(self.args, "bert_distill_feat_dim", self.plm_store.dim)
            if self.plm_store.dim != expected:
                raise DataError(
                    f"{folder} holds {self.plm_store.dim}-d features of {self.plm_store.meta['model']}, "
                    f"but --bert-distill-feat-dim is {expected}"
                )
            logger.info(
                f"PLM features for distillation: {folder} ({self.plm_store.meta['model']}, {expected}-d)"
            )
        return criterion

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        """The stock task's dataset, read through ``CheckedManifestCreator`` and checked item by item."""
        dataset = CheckedManifestCreator.from_tsv(
            root=self.args.data,
            cfg=self.data_cfg,
            splits=split,
            tgt_dict=self.tgt_dict,
            pre_tokenizer=self.build_tokenizer(self.args),
            bpe_tokenizer=self.build_bpe(self.args),
            is_train_split=split.startswith("train"),
            epoch=epoch,
            seed=self.args.seed,
            speaker_to_id=self.speaker_to_id,
            multitask=self.multitask_tasks,
        )
        check_items_when_read(dataset)
        _report_unknown_characters(split, dataset, self.data_cfg.vocab_filename)
        self.datasets[split] = dataset
        problems = find_unreadable_rows(dataset.ids, dataset.audio_paths)
        if problems:
            listed = "\n".join(f"  {utt_id}: {reason}" for utt_id, reason in problems[:_REPORTED_ROWS])
            more = (
                f"\n  ... and {len(problems) - _REPORTED_ROWS} more" if len(problems) > _REPORTED_ROWS else ""
            )
            manifest = Path(self.args.data) / f"{split}.tsv"
            raise UnreadableDataError(
                f"{len(problems)} row(s) of {manifest} point to missing or unreadable data:\n{listed}{more}\n"
                "Re-run the data preparation, or remove these rows from the manifest."
            )
        if self.plm_store is not None:
            missing = self.plm_store.missing(dataset.ids)
            if missing:
                raise MissingPlmFeaturesError(
                    f"{len(missing)} utterance(s) of {split} have no PLM features in "
                    f"{self.plm_store.folder}, e.g. {missing[:_REPORTED_ROWS]}: "
                    "run scripts/extract_plm_features.py on this split"
                )
            self.datasets[split] = PlmFeatureDataset(dataset, self.plm_store)

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        """fairseq's size filter, reporting utterance ids and frame counts instead of sample indices."""
        indices, ignored = dataset.filter_indices_by_size(indices, max_positions)
        if len(ignored) > 0:
            ids = getattr(dataset, "ids", None)
            listed = ", ".join(
                f"{ids[i] if ids is not None else f'#{i}'} ({dataset.size(i)})"
                for i in ignored[:_REPORTED_ROWS]
            )
            more = ", ..." if len(ignored) > _REPORTED_ROWS else ""
            sizes = (
                f"{len(ignored)} utterance(s) longer than the model's (frames, tokens) limit {max_positions}"
            )
            if not ignore_invalid_inputs:
                raise DataError(
                    f"{sizes}: {listed}{more}; skip them with --skip-invalid-size-inputs-valid-test, or raise"
                    " --max-source-positions / --max-target-positions"
                )
            logger.warning(f"{sizes} are skipped: {listed}{more}")
        return indices

    def get_batch_iterator(self, dataset, *args, **kwargs):
        _keep_every_sample(dataset)
        return super().get_batch_iterator(dataset, *args, **kwargs)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """fairseq 0.12's trainer tells only the LR scheduler where training is; our criteria hear it
        here (asg's linear segmentation warm-up counts updates)."""
        if isinstance(criterion, AsrCriterion):
            criterion.set_num_updates(update_num)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None):
        """The model's own generator (``AsrModel.build_generator``) with the decoding options of
        fairseq-generate and of this task (``add_decoding_arguments``)."""
        if not isinstance(models[0], AsrModel):
            return super().build_generator(models, args, seq_gen_cls, extra_gen_cls_kwargs)
        return models[0].build_generator(
            self.target_dictionary, DecodingOptions.from_fairseq(args, self.args)
        )

    def build_model(self, cfg, from_checkpoint=False):
        """Set the input size from the data config, as the stock task does, then build."""
        set_options(
            cfg,
            {
                "input_feat_per_channel": self.data_cfg.input_feat_per_channel,
                "input_channels": self.data_cfg.input_channels,
            },
        )
        return FairseqTask.build_model(self, cfg, from_checkpoint)


def _report_unknown_characters(split: str, dataset, dictionary_name: str) -> None:
    """Warn, with counts, about target symbols the dictionary lacks (fairseq reads them as <unk>)."""
    unknown, utterances = Counter(), 0
    for part in speech_datasets(dataset):
        if getattr(part, "tgt_texts", None) is None:
            continue
        for index in range(len(part)):
            symbols = [
                s for s in part.get_tokenized_tgt_text(index).split(" ") if s and s not in part.tgt_dict
            ]
            unknown.update(symbols)
            utterances += bool(symbols)
    if unknown:
        listed = ", ".join(f"{symbol} ({count})" for symbol, count in unknown.most_common(_REPORTED_ROWS))
        logger.warning(
            f"{utterances} utterance(s) of {split} have {sum(unknown.values())} character(s) outside"
            f" {dictionary_name}, read as <unk>: {listed}"
        )


def _keep_every_sample(dataset) -> None:
    """Make ``dataset.batch_by_size`` put the samples fairseq would drop into one last batch."""
    if getattr(dataset, "_keeps_every_sample", False):
        return
    fairseq_batch_by_size = dataset.batch_by_size

    def batch_by_size(indices, *args, **kwargs):
        batches = list(fairseq_batch_by_size(indices, *args, **kwargs))
        batched = set(np.concatenate(batches).tolist()) if batches else set()
        dropped = [index for index in np.asarray(indices).tolist() if index not in batched]
        if dropped:
            batches.append(np.asarray(dropped, dtype=np.int64))
        return batches

    dataset.batch_by_size = batch_by_size
    dataset._keeps_every_sample = True

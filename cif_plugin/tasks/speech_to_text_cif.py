"""Task ``speech_to_text_cif``: fairseq's speech-to-text data for the CIF models.

Same manifests (TSV: id, audio, n_frames, tgt_text, speaker) and YAML data config as stock
``speech_to_text`` (spec 4.2-4.4): characters from ``vocab_filename``, sentencepiece units when the
config names a ``bpe_tokenizer``, CMVN and SpecAugment transforms. Two additions: relative ``audio``
paths are resolved against the data folder unless the config sets ``audio_root`` (so prepared data
can be moved), a split fails at load time, naming the utterances, when rows point to missing or
unreadable features, and no utterance is lost to batching: fairseq 0.12's ``batch_by_size`` drops
a final batch that is not a multiple of ``--required-batch-size-multiple`` (fairseq issue 5036),
so decoding a test set would silently skip its shortest utterances.
"""

import logging
from pathlib import Path
from typing import Optional

import numpy as np
from fairseq import checkpoint_utils
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.speech_to_text import SpeechToTextTask
from omegaconf import DictConfig, open_dict

from ..generation import AsgGenerator, CifGenerator, CtcGenerator
from ..generation.prefix_lm_scorers import FairseqLmPrefixScorer, KenLmPrefixScorer
from ..modules.plm_feature_store import PlmFeatureStore
from .audio_manifest_check import find_unreadable_rows
from .plm_feature_dataset import PlmFeatureDataset

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
        parser.add_argument(
            "--decoding-tail-threshold",
            type=float,
            default=0.4,
            help="CIF tail firing threshold when decoding (fairseq-generate); 0.4 as published",
        )
        parser.add_argument(
            "--ngram-lm-path",
            default=None,
            help="CTC models: an n-gram LM (ARPA or KenLM binary, words = dictionary symbols) fused in "
            "prefix beam search at --lm-weight (fairseq-generate reads --lm-path itself, as a fairseq LM)",
        )
        parser.add_argument(
            "--ctc-token-bonus",
            type=float,
            default=0.0,
            help="CTC prefix beam search: score added per emitted label (offsets an LM's per-label cost)",
        )

    def __init__(self, args, tgt_dict):
        super().__init__(args, tgt_dict)
        self.data_cfg.config.setdefault("audio_root", str(Path(args.data).resolve()))
        self.plm_store = None  # opened by build_criterion when a distillation loss needs it

    def build_criterion(self, args):
        criterion = super().build_criterion(args)
        if getattr(criterion, "needs_plm_features", False):
            folder = getattr(self.args, "plm_feature_dir", None) or Path(self.args.data) / "plm_features"
            self.plm_store = PlmFeatureStore(folder)
            expected = getattr(self.args, "bert_distill_feat_dim", self.plm_store.dim)
            if self.plm_store.dim != expected:
                raise ValueError(
                    f"{folder} holds {self.plm_store.dim}-d features of {self.plm_store.meta['model']}, "
                    f"but --bert-distill-feat-dim is {expected}"
                )
            logger.info(
                f"PLM features for distillation: {folder} ({self.plm_store.meta['model']}, {expected}-d)"
            )
        return criterion

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
        dataset = self.datasets[split]
        problems = find_unreadable_rows(dataset.ids, dataset.audio_paths)
        if problems:
            listed = "\n".join(f"  {utt_id}: {reason}" for utt_id, reason in problems[:_REPORTED_ROWS])
            more = (
                f"\n  ... and {len(problems) - _REPORTED_ROWS} more" if len(problems) > _REPORTED_ROWS else ""
            )
            manifest = Path(self.args.data) / f"{split}.tsv"
            raise FileNotFoundError(
                f"{len(problems)} row(s) of {manifest} point to missing or unreadable data:\n{listed}{more}\n"
                "Re-run the data preparation, or remove these rows from the manifest."
            )
        if self.plm_store is not None:
            missing = self.plm_store.missing(dataset.ids)
            if missing:
                raise KeyError(
                    f"{len(missing)} utterance(s) of {split} have no PLM features in "
                    f"{self.plm_store.folder}, e.g. {missing[:_REPORTED_ROWS]}: "
                    "run scripts/extract_plm_features.py on this split"
                )
            self.datasets[split] = PlmFeatureDataset(dataset, self.plm_store)

    def get_batch_iterator(self, dataset, *args, **kwargs):
        _keep_every_sample(dataset)
        return super().get_batch_iterator(dataset, *args, **kwargs)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """Tell criteria that count updates (asg's linear segmentation warm-up) where training is."""
        if hasattr(criterion, "set_num_updates"):
            criterion.set_num_updates(update_num)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None):
        """CIF models: greedy for ``--beam 1``, beam search otherwise, NAR for NAR decoders, shallow
        fusion with the fairseq LM of ``--lm-path`` at ``--lm-weight``. CTC models: greedy or prefix
        beam search, with shallow fusion of the fairseq LM of ``--lm-path`` or the n-gram LM of
        ``--ngram-lm-path``, at ``--lm-weight`` with ``--ctc-token-bonus`` per label. ASG models: Viterbi."""
        lm_path, lm_weight = getattr(args, "lm_path", None), getattr(args, "lm_weight", 0.0)
        ngram_path = getattr(self.args, "ngram_lm_path", None)
        if ngram_path and lm_path:
            raise ValueError("fuse one LM: --lm-path (fairseq) or --ngram-lm-path (n-gram), not both")
        if hasattr(models[0], "transitions"):
            return AsgGenerator(models[0], self.target_dictionary, args.beam, args.nbest)
        if not hasattr(models[0], "decoder"):
            scorer = self.prefix_scorer(lm_path, ngram_path) if lm_path or ngram_path else None
            token_bonus = getattr(self.args, "ctc_token_bonus", 0.0)
            return CtcGenerator(
                models[0], self.target_dictionary, args.beam, args.nbest, scorer, lm_weight, token_bonus
            )
        if ngram_path:
            raise ValueError(f"--ngram-lm-path {ngram_path}: n-gram LMs fuse with CTC models only")
        tail_threshold = getattr(self.args, "decoding_tail_threshold", 0.4)
        lm = self.load_language_model(lm_path) if lm_path else None
        return CifGenerator(
            models[0], self.target_dictionary, args.beam, args.nbest, tail_threshold, lm, lm_weight
        )

    def prefix_scorer(self, lm_path: Optional[str], ngram_path: Optional[str]):
        """The fairseq LM of ``lm_path`` or the n-gram LM of ``ngram_path``, as a prefix scorer."""
        if ngram_path:
            return KenLmPrefixScorer(ngram_path, self.target_dictionary)
        dictionary = self.target_dictionary
        return FairseqLmPrefixScorer(self.load_language_model(lm_path), dictionary.eos(), dictionary.pad())

    def load_language_model(self, path: str):
        """A fairseq LM checkpoint trained over this task's dictionary (its task reads the same dict.txt)."""
        models, _, lm_task = checkpoint_utils.load_model_ensemble_and_task(
            [path], arg_overrides={"data": self.args.data}
        )
        if lm_task.source_dictionary.symbols != self.target_dictionary.symbols:
            raise ValueError(
                f"the LM {path} was trained with another dictionary than {self.args.data}/dict.txt"
            )
        return models[0]

    def build_model(self, cfg, from_checkpoint=False):
        """Set the input size from the data config, as the stock task does, then build."""
        values = dict(
            input_feat_per_channel=self.data_cfg.input_feat_per_channel,
            input_channels=self.data_cfg.input_channels,
        )
        # Distillation heads exist only for the losses that are on (legacy tasks see every option).
        if getattr(self.args, "apply_cif_contrastive_dis_cos_loss", False):
            values["distill_cif_outputs"] = True
        if getattr(self.args, "apply_dec_state_dis_loss", False):
            values["distill_decoder_states"] = True
        if getattr(self.args, "apply_knowledge_transfer", False):  # ctc_asr criterion
            values["knowledge_transfer_branch"] = True
        if hasattr(self.args, "asg_transitions_init"):  # asg criterion: the model holds what it trains
            values.update(
                transitions_init=self.args.asg_transitions_init, max_replabel=self.args.max_replabel
            )
        if isinstance(cfg, DictConfig):
            with open_dict(cfg):
                cfg.update(values)
        else:
            for name, value in values.items():
                setattr(cfg, name, value)
        return FairseqTask.build_model(self, cfg, from_checkpoint)


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

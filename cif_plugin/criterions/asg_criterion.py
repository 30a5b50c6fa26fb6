"""Criterion ``asg``: wav2letter's Auto Segmentation Criterion (Collobert et al., 2016) on our own
operator (``cif_plugin.ops.asg``), for ``s2t_asg_conformer`` models (docs/model.md, "ASG").

Targets per utterance: the tokens without ``</s>`` (there is no silence token), repetitions packed
into the model's replabel symbols "1".."N" (its --max-replabel), cut to the utterance's frames.
During the first ``--linseg-updates`` updates the target is replaced by its uniform linear
segmentation over the frames (one label per frame), the warm-up of the published criterion; the
count comes from the trainer, so it survives a restart. The loss is summed over the batch, each
utterance scaled by ``--scale-mode`` (1/sqrt(target size) as published). Validation decodes with
Viterbi and logs token and word error rates (``uer``, ``wer``).
"""

import logging
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ..ops.asg import SCALE_MODES, asg_decode, asg_loss, pack_replabels
from .asr_criterion import AsrCriterion, AsrCriterionConfig, strip_target
from .error_rates import count_errors

__all__ = ["AsgCriterion", "AsgCriterionConfig", "linear_segmentation"]

logger = logging.getLogger(__name__)


@dataclass
class AsgCriterionConfig(AsrCriterionConfig):
    scale_mode: ChoiceEnum(SCALE_MODES) = field(
        default="target_size_sqrt",
        metadata={
            "help": "per-utterance loss scale: 1, 1/target size, or 1/sqrt(target size) (wav2letter's)"
        },
    )
    linseg_updates: int = field(
        default=0,
        metadata={"help": "updates trained on uniform linear segmentations of the targets (warm-up)"},
    )
    hide_linseg_messages: bool = field(
        default=False, metadata={"help": "do not log when the linear segmentation warm-up starts and ends"}
    )
    asg_implementation: ChoiceEnum(["native", "python"]) = field(
        default="native",
        metadata={"help": "ASG operator: our C++/CUDA kernels, or the pure-PyTorch reference"},
    )


def linear_segmentation(labels: List[int], frames: int) -> List[int]:
    """One label per frame, each label over an equal share of the frames (wav2letter's LinSeg)."""
    return [labels[t * len(labels) // frames] for t in range(frames)]


@register_criterion("asg", dataclass=AsgCriterionConfig)
class AsgCriterion(AsrCriterion):
    def __init__(self, cfg: AsgCriterionConfig, task):
        super().__init__(cfg, task)
        if cfg.linseg_updates > 0 and not cfg.hide_linseg_messages:
            logger.info(
                f"ASG: the first {cfg.linseg_updates} updates train on linear segmentations of the targets"
            )

    def set_num_updates(self, num_updates: int) -> None:
        """The linear segmentation warm-up counts updates; it logs where it ends."""
        crossing = self.num_updates < self.cfg.linseg_updates <= num_updates
        if crossing and not self.cfg.hide_linseg_messages:
            logger.info(
                f"ASG: linear segmentation warm-up over at update {num_updates}: real targets from now"
            )
        super().set_num_updates(num_updates)

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        emissions, frames = net_output["emissions"], net_output["encoder_lengths"]
        references = strip_target(sample["target"], [self.pad, self.eos])
        linseg = model.training and self.num_updates < self.cfg.linseg_updates
        replabels = model.replabels
        targets, target_lengths = self.prepare_targets(
            references, frames.tolist(), sample["id"].tolist(), replabels, linseg
        )
        loss = self.asg_loss_of_usable(emissions, model.transitions, targets, frames, target_lengths, sample)
        ntokens = sum(len(reference) for reference in references)
        sample_size, logging_output = self.logging_output(sample, loss, ntokens)
        if not model.training:
            decoded, _ = asg_decode(emissions, model.transitions, frames, replabels)
            hypotheses = [[span.label for span in spans] for spans in decoded]
            logging_output.update(count_errors(hypotheses, references, self.words))
        return loss, sample_size, logging_output

    def asg_loss_of_usable(self, emissions, transitions, targets, frames, target_lengths, sample):
        """The summed ASG loss of the utterances with at least one encoder frame; the others (input
        too short for the front end's subsampling) would make it infinite, so they are left out and
        named in the log."""
        usable = frames > 0
        for index in torch.nonzero(~usable).flatten().tolist():
            input_frames = int(sample["net_input"]["src_lengths"][index])
            logger.warning(
                f"utterance {int(sample['id'][index])}: {input_frames} input frame(s) give no encoder frame;"
                " left out of the ASG loss"
            )
        if not usable.any():
            return emissions.sum() * 0.0
        if not usable.all():
            emissions, targets, frames, target_lengths = (
                x[usable] for x in (emissions, targets, frames, target_lengths)
            )
        return asg_loss(
            emissions,
            transitions,
            targets,
            frames,
            target_lengths,
            reduction="sum",
            scale_mode=str(self.cfg.scale_mode),
            implementation=str(self.cfg.asg_implementation),
        )

    def prepare_targets(
        self,
        references: List[List[int]],
        frames: List[int],
        ids: List[int],
        replabels: List[int],
        linseg: bool,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, S) padded ASG targets and (B,) lengths: packed, cut to the frames, linear-segmented."""
        rows = []
        for tokens, length, utterance in zip(references, frames, ids, strict=True):
            if not tokens:
                raise ValueError(f"utterance {utterance} has an empty target: ASG needs at least one label")
            labels = pack_replabels(tokens, replabels)[:length]
            rows.append(linear_segmentation(labels, length) if linseg else labels)
        lengths = torch.tensor([len(row) for row in rows])
        targets = torch.full((len(rows), max(1, int(lengths.max()))), self.pad, dtype=torch.long)
        for b, row in enumerate(rows):
            targets[b, : len(row)] = torch.tensor(row)
        return targets, lengths

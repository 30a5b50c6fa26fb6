"""Criterion ``ctc_asr``: CTC for encoder-only models (stock fairseq already registers ``ctc``).

Labels are the targets without ``</s>``; the blank is ``<ctc_blank>`` when the dictionary has one,
else ``<s>``. Utterances with fewer frames than labels would give an infinite loss: by default
(``--zero-infinity``) such losses and their gradients are zeroed. Validation counts the token and
word errors of greedy CTC decoding (derived ``uer``/``wer``, for ``--best-checkpoint-metric wer``).

Knowledge transfer from a PLM (``--apply-knowledge-transfer``, arXiv 2203.03582): the model's
training-only CIF branch emits one vector per label; the loss adds
kt_quantity_loss_lambda * |sum(alpha) - labels| + kt_loss_lambda * distance to the PLM features of
the same tokens, a cosine distance or the contrastive (ACD) loss. The task loads the PLM features.
"""

from dataclasses import dataclass, field
from typing import Dict

import torch
from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ..ops.ctc import ctc_blank_index, ctc_greedy_tokens, ctc_loss_sum
from .asr_criterion import AsrCriterion, AsrCriterionConfig, strip_target
from .cif_losses import quantity_loss_sum
from .distillation_losses import aligned_teacher, contrastive_distillation, cosine_distance_loss
from .error_rates import count_errors

__all__ = ["CtcAsrCriterion", "CtcAsrCriterionConfig"]

LOSS_TERMS = ("loss", "ctc_loss", "kt_quantity_loss", "kt_loss")


@dataclass
class CtcAsrCriterionConfig(AsrCriterionConfig):
    apply_knowledge_transfer: bool = field(
        default=False,
        metadata={
            "help": "pull the vectors of a training-only CIF branch towards PLM token features "
            "(needs a PLM feature store, see --plm-feature-dir)"
        },
    )
    kt_loss_type: ChoiceEnum(["cosine", "contrastive"]) = field(
        default="cosine",
        metadata={"help": "knowledge transfer distance: 1 - cosine, or the contrastive (ACD) loss"},
    )
    kt_loss_lambda: float = field(default=1.0, metadata={"help": "weight of the knowledge-transfer loss"})
    kt_quantity_loss_lambda: float = field(
        default=1.0, metadata={"help": "weight of the CIF branch's quantity loss"}
    )
    num_contrastive_negative_samples: int = field(
        default=700,
        metadata={"help": "contrastive: negatives per anchor (0.8 x the anchors when the batch has fewer)"},
    )
    contrastive_temperature: float = field(default=0.1, metadata={"help": "contrastive: temperature tau"})
    remove_overlap_in_negs: bool = field(
        default=False,
        metadata={"help": "contrastive: an anchor's own PLM feature drawn as a negative does not count"},
    )


@register_criterion("ctc_asr", dataclass=CtcAsrCriterionConfig)
class CtcAsrCriterion(AsrCriterion):
    loss_terms = LOSS_TERMS

    def __init__(self, cfg: CtcAsrCriterionConfig, task):
        super().__init__(cfg, task)
        self.blank = ctc_blank_index(self.dictionary)

    @property
    def needs_plm_features(self) -> bool:
        return self.cfg.apply_knowledge_transfer

    def forward(self, model, sample, reduce=True):
        target = sample["target"]
        labels = target.masked_fill(target.eq(self.eos), self.pad)  # CTC labels: no </s>
        label_lengths = labels.ne(self.pad).sum(dim=1)
        transfer = self.cfg.apply_knowledge_transfer
        net_output = model(**sample["net_input"], target_lengths=label_lengths if transfer else None)
        terms = {
            "ctc_loss": ctc_loss_sum(
                net_output["ctc_logits"],
                net_output["encoder_lengths"],
                labels,
                label_lengths,
                self.pad,
                self.blank,
                self.cfg.zero_infinity,
            )
        }
        loss = terms["ctc_loss"]
        if transfer:
            terms.update(self.knowledge_transfer_terms(net_output, sample, label_lengths))
            loss = loss + self.cfg.kt_quantity_loss_lambda * terms["kt_quantity_loss"]
            loss = loss + self.cfg.kt_loss_lambda * terms["kt_loss"]
        ntokens = int(label_lengths.sum())
        sample_size, logging_output = self.logging_output(
            sample, loss, ntokens, **{name: value.item() for name, value in terms.items()}
        )
        if not model.training:
            with torch.no_grad():
                hypotheses = ctc_greedy_tokens(
                    net_output["ctc_logits"], net_output["encoder_lengths"], self.blank
                )
            references = strip_target(target, [self.pad, self.eos])
            logging_output.update(count_errors(hypotheses, references, self.words))
        return loss, sample_size, logging_output

    def knowledge_transfer_terms(self, net_output, sample, label_lengths) -> Dict[str, torch.Tensor]:
        """The CIF branch's quantity loss, and its distance to the PLM features of the labels (sums)."""
        if "plm_space_features" not in net_output:
            raise KeyError(
                "the model has no knowledge-transfer branch: build it with --apply-knowledge-transfer"
            )
        if "plm_features" not in sample:
            raise KeyError(
                "the batch has no plm_features: train with --task speech_to_text_cif and a PLM store"
            )
        features, plm = net_output["plm_space_features"], sample["plm_features"]
        width = min(plm.size(1) - 1, features.size(1))
        positions = torch.arange(width, device=features.device)
        # A vector counts when the CIF emitted it and it lines up with a label (not [SEP] or padding).
        anchors = ~net_output["cif_padding_mask"][:, :width] & (positions < label_lengths.unsqueeze(1))
        student, teacher = features[:, :width][anchors], aligned_teacher(plm, width)[anchors]
        terms = {"kt_quantity_loss": quantity_loss_sum(net_output["quantity"], label_lengths)}
        if self.cfg.kt_loss_type == "cosine":
            terms["kt_loss"] = cosine_distance_loss(student, teacher)
        else:
            terms["kt_loss"], terms["contrastive_correct"] = contrastive_distillation(
                student,
                teacher,
                self.cfg.num_contrastive_negative_samples,
                self.cfg.contrastive_temperature,
                self.cfg.remove_overlap_in_negs,
                self.batch_generator(sample, student.device),
            )
            terms["contrastive_total"] = torch.tensor(len(student))
        return terms

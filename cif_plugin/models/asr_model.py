"""The base of the plugin's model families: each declares its options, the options its criterion
implies, its encoder pass and how it decodes, so the task needs to know none of them.

Adding a family means one file here: a config dataclass, a subclass of :class:`AsrModel` with
``build_from_config`` and ``build_generator`` (and ``options_from_criterion`` if a criterion
option changes what the model holds), and its architecture functions.
"""

import argparse
from dataclasses import fields
from typing import Any, ClassVar, Dict, Optional, Tuple

from fairseq.models import BaseFairseqModel
from omegaconf import DictConfig, open_dict
from torch import Tensor

from ..generation.decoding_options import DecodingOptions
from ..modules.masks import padding_mask_from_lengths
from .dataclass_arguments import add_dataclass_arguments

__all__ = ["AsrModel", "fill_missing", "set_options"]


def set_options(cfg, values: Dict[str, Any]) -> None:
    """Set ``values`` on a model config, an argparse namespace or an omegaconf ``DictConfig``."""
    if isinstance(cfg, DictConfig):
        with open_dict(cfg):
            cfg.update(values)
    else:
        for name, value in values.items():
            setattr(cfg, name, value)


def fill_missing(args, values: Dict[str, Any]) -> None:
    """Architecture functions: set each value the command line left out."""
    for name, value in values.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


class AsrModel(BaseFairseqModel):
    """A speech recogniser of this plugin: a pooling conformer ``encoder`` and its heads.

    Subclasses set ``config_type`` (the dataclass declaring every option once, defaults = the
    paper's) and implement ``build_from_config`` and ``build_generator``.
    """

    config_type: ClassVar[type]

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_dataclass_arguments(parser, cls.config_type)

    @classmethod
    def paper_defaults(cls) -> Dict[str, Any]:
        """Every option's dataclass default (the published configuration)."""
        return {field.name: field.default for field in fields(cls.config_type)}

    @classmethod
    def options_from_criterion(cls, criterion_args) -> Dict[str, Any]:
        """Model options that follow from the criterion's when training (e.g. heads that only a
        loss that is on trains). Only values to set are returned: a checkpoint keeps its own."""
        return {}

    @classmethod
    def build_model(cls, cfg, task):
        # Legacy (argparse) tasks see every option of the command line, the criterion's included.
        set_options(cfg, cls.options_from_criterion(task.args))
        return cls.build_from_config(cfg, task)

    @classmethod
    def build_from_config(cls, cfg, task) -> "AsrModel":
        raise NotImplementedError

    def build_generator(self, dictionary, options: DecodingOptions):
        """The generator fairseq-generate (and the inference library) decodes this model with."""
        raise NotImplementedError

    def forward_encoder(
        self, src_tokens: Tensor, src_lengths: Tensor, chunk_size: Optional[int] = None
    ) -> Dict[str, Any]:
        """(B, T, F) features -> ``encoder_out`` (B, T', D), ``encoder_lengths`` (B,),
        ``encoder_padding_mask`` (B, T') and ``encoder_chunk_size`` (int, 0 for full context: the
        encoder's own, drawn per batch in dynamic chunk training, or ``chunk_size`` when given)."""
        if chunk_size is None:
            chunk_size = self.encoder.batch_chunk_size()
        encoder_out, lengths = self.encoder(src_tokens, src_lengths, chunk_size)
        return {
            "encoder_out": encoder_out,
            "encoder_lengths": lengths,
            "encoder_padding_mask": padding_mask_from_lengths(lengths, encoder_out.size(1)),
            "encoder_chunk_size": chunk_size,
        }

    def ctc_head(self, src_tokens: Tensor, src_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, T', V) CTC logits and their (B,) lengths, for models with a CTC head (alignment)."""
        raise ValueError(f"{type(self).__name__} has no CTC head")

    def max_positions(self):
        return (self.encoder.max_source_positions, None)

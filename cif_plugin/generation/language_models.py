"""Language models for shallow fusion: a fairseq LM checkpoint, or an n-gram model as a prefix scorer."""

from typing import Optional

from fairseq import checkpoint_utils

from .prefix_lm_scorers import FairseqLmPrefixScorer, KenLmPrefixScorer

__all__ = ["load_fairseq_lm", "load_prefix_scorer"]


def load_fairseq_lm(path: str, dictionary, data_dir: Optional[str] = None):
    """The LM of a fairseq checkpoint trained over ``dictionary`` (its task reads ``data_dir``/dict.txt).

    Raises:
        ValueError: the LM's dictionary is not ``dictionary``.
    """
    overrides = {"data": data_dir} if data_dir else None
    models, _, lm_task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
    if lm_task.source_dictionary.symbols != dictionary.symbols:
        raise ValueError(f"the LM {path} was trained with another dictionary than the recogniser's")
    return models[0]


def load_prefix_scorer(options, dictionary):
    """The LM of ``options`` (``DecodingOptions``) as a CTC prefix scorer, or None without one."""
    if options.ngram_lm_path:
        return KenLmPrefixScorer(options.ngram_lm_path, dictionary)
    if options.lm_path:
        lm = load_fairseq_lm(options.lm_path, dictionary, options.data_dir)
        return FairseqLmPrefixScorer(lm, dictionary.eos(), dictionary.pad())
    return None

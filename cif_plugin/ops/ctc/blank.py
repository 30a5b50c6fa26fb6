"""Which dictionary symbol is the CTC blank."""

__all__ = ["CTC_BLANK_SYMBOL", "ctc_blank_index"]

CTC_BLANK_SYMBOL = "<ctc_blank>"


def ctc_blank_index(dictionary, blank_symbol: str = CTC_BLANK_SYMBOL) -> int:
    """The index of ``blank_symbol`` if the dictionary has it, else of ``<s>`` (bos).

    ``<s>`` is never a target, so it can serve as the blank; the published CIF code does this.

    Args:
        dictionary: a fairseq-style dictionary (``indices``, ``index()``, ``bos()``).
        blank_symbol (str): the preferred blank symbol. Default: ``<ctc_blank>``.
    """
    if blank_symbol in dictionary.indices:
        return dictionary.index(blank_symbol)
    return dictionary.bos()

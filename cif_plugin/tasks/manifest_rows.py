"""Read manifests and dictionaries the way fairseq does, refusing or skipping what it would choke on.

fairseq 0.12 reads a manifest with ``csv.DictReader`` and indexes its columns deep inside the
dataset constructor: a missing column is a bare ``KeyError``, a frame count of ``12.5`` a
``ValueError`` naming neither file nor line, and duplicated ids pass unnoticed (they would then
share PLM features and overwrite each other's results). Rows that cannot be trained on or scored
(no frames, an empty transcript) are skipped and counted instead of failing a batch mid-epoch.
"""

import csv
import logging
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

from fairseq.data.audio.speech_to_text_dataset import SpeechToTextDatasetCreator

from .data_errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["ManifestError", "CheckedManifestCreator", "check_dictionary_file", "read_manifest_rows"]

REQUIRED_COLUMNS = ("id", "audio", "n_frames", "tgt_text")
_LISTED_IDS = 5


class ManifestError(DataError):
    """A manifest or dictionary that cannot be used; the message names the file, line and reason."""


def read_manifest_rows(path: Path) -> Tuple[List[Dict[str, str]], Dict[str, List[str]]]:
    """The usable rows of a TSV manifest and ``{reason: ids}`` of the rows skipped.

    Raises:
        ManifestError: a required column is missing, a row has more or fewer fields than the
            header, ``n_frames`` is not a whole number >= 0, an id repeats, or no row is usable.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Dataset not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(
            handle, delimiter="\t", quotechar=None, doublequote=False, quoting=csv.QUOTE_NONE
        )
        header = reader.fieldnames or []
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise ManifestError(
                f"{path}: no {', '.join(missing)} column; the header is {header}, and a manifest needs "
                f"at least {', '.join(REQUIRED_COLUMNS)} (tab-separated)"
            )
        rows, skipped, line_of_id = [], defaultdict(list), {}
        for row in reader:
            line = reader.line_num
            extra = row.pop(None, [])
            absent = sum(value is None for value in row.values())
            if extra or absent:
                fields = len(header) + len(extra) - absent
                raise ManifestError(
                    f"{path}, line {line}: {fields} tab-separated fields, the header has {len(header)}"
                )
            utt_id, frames = row["id"], row["n_frames"].strip()
            if not frames.isdigit():
                raise ManifestError(
                    f"{path}, line {line} ({utt_id}): n_frames is {row['n_frames']!r}, not a whole number"
                    " >= 0"
                )
            if utt_id in line_of_id:
                raise ManifestError(
                    f"{path}, line {line}: id {utt_id} is already the id of line {line_of_id[utt_id]}"
                )
            line_of_id[utt_id] = line
            if int(frames) == 0:
                skipped["no frames (n_frames 0)"].append(utt_id)
            elif not row["tgt_text"].strip():
                skipped["empty transcript"].append(utt_id)
            else:
                rows.append(row)
    if not rows:
        raise ManifestError(f"{path}: no usable rows{describe_skipped(skipped)}")
    return rows, dict(skipped)


def describe_skipped(skipped: Dict[str, List[str]]) -> str:
    """``"; skipped 3: 2 x empty transcript (a, b), ..."`` or ``""`` when nothing was skipped."""
    if not skipped:
        return ""
    parts = [
        f"{len(ids)} x {reason} ({', '.join(ids[:_LISTED_IDS])}{', ...' if len(ids) > _LISTED_IDS else ''})"
        for reason, ids in skipped.items()
    ]
    return f"; skipped {sum(len(ids) for ids in skipped.values())}: " + "; ".join(parts)


class CheckedManifestCreator(SpeechToTextDatasetCreator):
    """fairseq's speech-to-text dataset creator reading manifests through :func:`read_manifest_rows`."""

    @classmethod
    def _load_samples_from_tsv(cls, root: str, split: str) -> List[Dict[str, str]]:
        path = Path(root) / f"{split}.tsv"
        rows, skipped = read_manifest_rows(path)
        if skipped:
            logger.warning(f"{path}: {len(rows)} rows kept{describe_skipped(skipped)}")
        return rows


def check_dictionary_file(path: Path) -> None:
    """Refuse a fairseq dictionary file with a malformed line or a symbol listed twice.

    fairseq's own errors name neither the file nor the line. A line flagged ``#fairseq:overwrite`` may
    repeat a symbol, as fairseq allows.
    """
    path = Path(path)
    line_of_symbol: Dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.rstrip().rsplit(" ", 2 if line.rstrip().endswith("#fairseq:overwrite") else 1)
        if len(fields) < 2 or not fields[1].lstrip("-").isdigit():
            raise ManifestError(f"{path}, line {number}: expected '<symbol> <count>', got {line!r}")
        symbol, overwrite = fields[0], fields[-1] == "#fairseq:overwrite"
        if symbol in line_of_symbol and not overwrite:
            raise ManifestError(
                f"{path}, line {number}: symbol {symbol!r} is already on line {line_of_symbol[symbol]};"
                " each symbol may appear once"
            )
        line_of_symbol[symbol] = number

"""On-disk store of pre-computed PLM token features, keyed by utterance id.

Layout of a store folder:

- ``meta.json``: model, layer, dimension, dtype (float16) and tokenisation;
- ``<split>.f16``: the rows of every utterance of the split, one after the other, float16, no padding
  (read through a memory map, so a worker touches only the rows it collates);
- ``<split>.index.tsv``: ``<utterance id>\\t<first row>\\t<number of rows>``, one line per utterance.

The writer appends an utterance's rows, then its index line, and flushes both; on reopening it
drops an index line cut short and truncates rows that no index line covers, so a killed extraction
resumes without corrupt data.
The published pipeline stored a padded float32 .npy per utterance plus a JSON index of all of them.
"""

import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .data_errors import DataError

__all__ = ["PlmFeatureStore", "PlmFeatureStoreWriter", "read_meta"]

META = "meta.json"
DTYPE = np.float16


def read_meta(folder: Path) -> Dict:
    path = Path(folder) / META
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: is {folder} a PLM feature store (scripts/extract_plm_features.py)?"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _read_index(path: Path) -> Dict[str, Tuple[int, int]]:
    """Index lines of a split; a last line without its newline (a killed writer's) is left out."""
    index = {}
    if path.is_file():
        lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")[:-1]
        for number, line in enumerate(lines, start=1):
            fields = line.split("\t")
            if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
                raise DataError(
                    f"{path}, line {number}: expected <utterance id> TAB <row> TAB <rows>: {line!r}"
                )
            index[fields[0]] = (int(fields[1]), int(fields[2]))
    return index


def _drop_incomplete_last_line(path: Path) -> None:
    if path.is_file():
        content = path.read_bytes()
        if content and not content.endswith(b"\n"):
            with open(path, "r+b") as handle:
                handle.truncate(content.rfind(b"\n") + 1)


class PlmFeatureStoreWriter:
    """Appends utterances to one split of a store; resumes where a previous writer stopped.

    Args:
        folder (Path): the store folder (created if needed).
        split (str): the split name (file prefix).
        meta (dict): model, layer, dim and tokenisation; must equal an existing store's.
    """

    def __init__(self, folder: Path, split: str, meta: Dict):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "dtype": "float16"}
        if (self.folder / META).is_file():
            existing = read_meta(self.folder)
            if existing != meta:
                raise DataError(f"{self.folder} holds features of {existing}, not {meta}: use another folder")
        else:
            temporary = self.folder / (META + ".tmp")
            temporary.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
            os.replace(temporary, self.folder / META)
        self.dim = int(meta["dim"])
        self.data_path = self.folder / f"{split}.f16"
        self.index_path = self.folder / f"{split}.index.tsv"
        _drop_incomplete_last_line(self.index_path)
        self.index = _read_index(self.index_path)
        self.rows = sum(length for _, length in self.index.values())
        row_bytes = self.dim * np.dtype(DTYPE).itemsize
        present = self.data_path.stat().st_size if self.data_path.is_file() else 0
        if present < self.rows * row_bytes:
            raise DataError(
                f"{self.data_path} is truncated: {present} bytes for the {self.rows} rows its index lists;"
                f" delete it and {self.index_path.name} to extract {split} again"
            )
        self._data = open(self.data_path, "ab")
        self._data.truncate(self.rows * row_bytes)  # drop rows written after the last index line
        self._index = open(self.index_path, "a", encoding="utf-8")

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.index

    def add(self, utt_id: str, features: np.ndarray) -> None:
        """Append (rows, dim) features of one utterance."""
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"{utt_id}: features of shape {features.shape}, expected (rows, {self.dim})")
        self._data.write(np.ascontiguousarray(features, dtype=DTYPE).tobytes())
        self._data.flush()
        self._index.write(f"{utt_id}\t{self.rows}\t{len(features)}\n")
        self._index.flush()
        self.index[utt_id] = (self.rows, len(features))
        self.rows += len(features)

    def close(self) -> None:
        for handle in (self._data, self._index):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PlmFeatureStore:
    """Reads features by utterance id; memory maps open lazily (so the store pickles to workers).

    Args:
        folder (Path): the store folder.
        splits (iterable of str, optional): splits to index; default every ``*.index.tsv``.
    """

    def __init__(self, folder: Path, splits: Optional[Iterable[str]] = None):
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        self.dim = int(self.meta["dim"])
        if splits is None:
            splits = sorted(p.name[: -len(".index.tsv")] for p in self.folder.glob("*.index.tsv"))
        self.location: Dict[str, Tuple[str, int, int]] = {}
        for split in splits:
            index = _read_index(self.folder / f"{split}.index.tsv")
            self._check_rows_present(split, index)
            for utt_id, (start, length) in index.items():
                self.location[utt_id] = (split, start, length)
        self._maps: Dict[str, np.memmap] = {}

    def _check_rows_present(self, split: str, index: Dict[str, Tuple[int, int]]) -> None:
        """Refuse a split whose data file is shorter than its index says (a truncated copy)."""
        if not index:
            return
        path = self.folder / f"{split}.f16"
        utt_id, (start, length) = max(index.items(), key=lambda item: sum(item[1]))
        needed = (start + length) * self.dim * np.dtype(DTYPE).itemsize
        present = path.stat().st_size if path.is_file() else 0
        if present < needed:
            raise DataError(
                f"{path} is truncated: {present} bytes, but its index needs {needed} (up to utterance"
                f" {utt_id}); copy the store again, or delete {split}.f16 and {split}.index.tsv and rerun"
                " scripts/extract_plm_features.py"
            )

    def missing(self, utt_ids: Iterable[str]) -> List[str]:
        return [utt_id for utt_id in utt_ids if utt_id not in self.location]

    def __getitem__(self, utt_id: str) -> np.ndarray:
        """(rows, dim) float16 features of one utterance."""
        split, start, length = self.location[utt_id]
        if split not in self._maps:
            self._maps[split] = np.memmap(self.folder / f"{split}.f16", dtype=DTYPE, mode="r").reshape(
                -1, self.dim
            )
        return self._maps[split][start : start + length]

    def __getstate__(self):
        return {**self.__dict__, "_maps": {}}

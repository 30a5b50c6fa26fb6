"""Check at load time that every manifest row points to readable features or audio.

fairseq's speech-to-text dataset opens a row's ``audio`` only when the row is batched, so a
missing zip or a bad slice crashes training mid-epoch. This reads the first bytes of every row's
data (one open per file) and reports the utterance ids that cannot be read, and why.
"""

import os
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

from fairseq.data.audio.audio_utils import is_npy_data, is_sf_audio_data

__all__ = ["find_unreadable_rows"]

_MAGIC_BYTES = 8


def find_unreadable_rows(ids: Sequence[str], audio_paths: Sequence[str]) -> List[Tuple[str, str]]:
    """(utterance id, reason) for each row whose data is missing or not features/audio.

    A row's path is a feature or audio file, or ``<zip>:<byte offset>:<byte length>``.
    """
    rows_by_file: Dict[str, List[Tuple[str, int, int]]] = defaultdict(list)
    problems = []
    for utt_id, path in zip(ids, audio_paths, strict=True):
        file_path, *slice_ptr = path.split(":") if not os.path.isfile(path) else (path,)
        if len(slice_ptr) not in (0, 2) or not all(part.isdigit() for part in slice_ptr):
            problems.append((utt_id, f"'{path}' is neither a file nor <zip>:<offset>:<length>"))
            continue
        offset, length = (int(slice_ptr[0]), int(slice_ptr[1])) if slice_ptr else (0, -1)
        rows_by_file[file_path].append((utt_id, offset, length))
    for file_path, rows in rows_by_file.items():
        problems += _check_file(file_path, rows)
    return problems


def _check_file(file_path: str, rows: List[Tuple[str, int, int]]) -> List[Tuple[str, str]]:
    try:
        handle = open(file_path, "rb")
    except OSError as error:
        return [(utt_id, f"cannot open {file_path}: {error.strerror}") for utt_id, _, _ in rows]
    problems = []
    with handle:
        size = os.fstat(handle.fileno()).st_size
        for utt_id, offset, length in rows:
            if length >= 0 and offset + length > size:
                problems.append(
                    (utt_id, f"slice {offset}:{length} ends past the end of {file_path} ({size} bytes)")
                )
                continue
            handle.seek(offset)
            head = handle.read(_MAGIC_BYTES)
            if not (is_npy_data(head) or is_sf_audio_data(head)):
                problems.append((utt_id, f"no .npy or audio data at byte {offset} of {file_path}"))
    return problems

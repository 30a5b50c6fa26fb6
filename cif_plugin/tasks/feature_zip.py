"""The feature store of fairseq's speech-to-text data: .npy arrays in an uncompressed zip.

A manifest row addresses one array as ``<zip>:<byte offset>:<byte length>`` so the dataset reads
it with one seek, without unzipping (fairseq's ``get_features_or_waveform``).
"""

import io
import os
import struct
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Tuple

import numpy as np

__all__ = ["write_feature_zip"]

_LOCAL_HEADER_SIZE = 30
_NAME_LENGTH_OFFSET = 26


def write_feature_zip(
    path: Path, arrays: Iterable[Tuple[str, np.ndarray]], relative_to: Path = None
) -> Dict[str, str]:
    """Store each (id, array) as ``<id>.npy`` in an uncompressed zip, atomically.

    The zip is written under a temporary name and renamed at the end, so an interrupted job never
    leaves a truncated zip under ``path``.

    Args:
        path (Path): the zip to write.
        arrays (iterable): (utterance id, array) pairs; consumed once, so it may be a generator.
        relative_to (Path, optional): write the zip path in the returned addresses relative to this
            folder (the data folder, for relocatable manifests); absolute otherwise.

    Returns:
        dict: utterance id -> ``<zip>:<offset>:<length>``.
    """
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for utt_id, array in arrays:
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{utt_id}.npy", buffer.getvalue())
    name = os.path.relpath(path, relative_to) if relative_to is not None else str(path.resolve())
    addresses = {}
    with zipfile.ZipFile(temporary) as archive, open(temporary, "rb") as raw:
        for info in archive.infolist():
            raw.seek(info.header_offset + _NAME_LENGTH_OFFSET)
            name_length, extra_length = struct.unpack("<HH", raw.read(4))
            data_offset = info.header_offset + _LOCAL_HEADER_SIZE + name_length + extra_length
            addresses[info.filename[: -len(".npy")]] = f"{name}:{data_offset}:{info.file_size}"
    os.replace(temporary, path)
    return addresses

"""What the command line is given to transcribe: files, folders (recursive), list files, Kaldi wav.scp."""

from pathlib import Path
from typing import Iterable, List

from .audio_inputs import NamedFile

__all__ = ["AUDIO_EXTENSIONS", "collect_inputs", "read_list_file", "read_wav_scp"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")


def read_wav_scp(path: Path) -> List[NamedFile]:
    """``<id> <path>`` lines; a piped command (``... |``) is refused: this reads files only."""
    entries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt_id, _, location = line.strip().partition(" ")
        location = location.strip()
        if not location:
            raise ValueError(f"{path}:{number}: expected '<id> <path>', got {line!r}")
        if location.endswith("|"):
            raise ValueError(
                f"{path}:{number}: {utt_id} is a piped command ({location}); run it into a file first "
                "(sox, ffmpeg ...) and list that file"
            )
        entries.append(NamedFile(utt_id, Path(location)))
    return entries


def read_list_file(path: Path) -> List[Path]:
    """One audio path per line (blank lines ignored)."""
    return [
        Path(line.strip()) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def collect_inputs(
    paths: Iterable[Path], list_files: Iterable[Path] = (), wav_scps: Iterable[Path] = ()
) -> List:
    """Files as given, folders as their audio files (recursive, sorted), then list files and wav.scp
    entries. A path that does not exist is kept: its transcript reports it."""
    inputs: List = []
    for path in map(Path, paths):
        if path.is_dir():
            inputs += sorted(
                p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
            )
        else:
            inputs.append(path)
    for list_file in list_files:
        inputs += read_list_file(list_file)
    for scp in wav_scps:
        inputs += read_wav_scp(scp)
    return inputs

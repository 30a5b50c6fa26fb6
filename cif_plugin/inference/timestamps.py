"""Token times from what each family's search knows about its frames.

All times are on the encoder frame clock: ``frame_seconds`` = 10 ms x the encoder's frame stride
(80 ms for the paper architecture, so a time is exact to one encoder frame), and never exceed the
audio's duration.

- CIF: a token ends at the frame where the CIF fired it and starts at the first frame where the CIF
  has integrated more than ``onset`` of its weight (so leading silence and pauses are not part of
  it).
- CTC: a token spans the frames of its label on the best path (the spikes of greedy decoding, or
  the forced alignment of the decoded labels after beam search).
- ASG: a token spans its run of frames on the Viterbi path.
"""

from typing import List, Sequence, Tuple

import numpy as np

from ..ops.token_span import TokenSpan

__all__ = ["cif_token_times", "span_times"]


def cif_token_times(
    fire_frames: Sequence[int], cif_weights: np.ndarray, frame_seconds: float, onset: float, duration: float
) -> List[Tuple[float, float]]:
    """(start, end) seconds of each CIF token from its fire frame and the cumulative CIF weight."""
    cumulative = np.cumsum(cif_weights)
    times, previous_end = [], 0.0
    for index, frame in enumerate(fire_frames):
        started = np.nonzero(cumulative > index + onset)[0]
        start_frame = min(int(started[0]), frame) if len(started) else frame
        start = max(start_frame * frame_seconds, previous_end)
        end = min((frame + 1) * frame_seconds, duration)
        times.append((round(min(start, end), 3), round(end, 3)))
        previous_end = end
    return times


def span_times(
    spans: Sequence[TokenSpan], frame_seconds: float, duration: float
) -> List[Tuple[float, float]]:
    """(start, end) seconds of frame spans (CTC, ASG), clipped to the audio."""
    times = []
    for span in spans:
        end = min(span.end * frame_seconds, duration)
        times.append((round(min(span.start * frame_seconds, end), 3), round(end, 3)))
    return times

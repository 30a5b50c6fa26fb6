"""Plot how a model aligns one audio file: fbank, frame weights, token positions, emitted tokens.

Top: the 80-bin filterbank over time. Bottom, for a CIF model: the CIF weight of every encoder frame
(a step per frame), a vertical line where each token fired and the token written there; for a CTC
model: 1 - P(blank) per frame and a line where each token's span starts; for an ASG model the
lines only. Chinese glyphs
need a CJK font (``make install`` installs WenQuanYi Micro Hei); without one, or with
``--pinyin``, tokens are written in pinyin. The title says which.

Usage: python scripts/plot_alignment.py --model exp/avg.pt audio.wav --output alignment.png
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from cif_plugin.inference.cli import add_model_arguments, recognizer_from_args  # noqa: E402
from cif_plugin.tasks.fbank_features import FRAME_SHIFT_SECONDS  # noqa: E402

CJK_FONT_NAMES = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP",
                  "Source Han Sans SC", "SimHei", "Microsoft YaHei", "AR PL UMing CN")  # fmt: skip


def find_cjk_font() -> Optional[str]:
    """The first installed font family from ``CJK_FONT_NAMES``, or None."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONT_NAMES if name in installed), None)


def to_pinyin(symbols: List[str]) -> List[str]:
    from pypinyin import lazy_pinyin

    return [" ".join(lazy_pinyin(symbol)) or symbol for symbol in symbols]


def plot(inspection: dict, output: Path, name: str, font: Optional[str], pinyin: bool) -> str:
    """Write the PNG; return how the tokens were written (in a CJK font, or in pinyin and why)."""
    transcript = inspection["transcript"]
    symbols = [t.token for t in transcript.tokens]
    if font is not None and not pinyin:
        plt.rcParams["font.family"] = ["sans-serif"]
        plt.rcParams["font.sans-serif"] = [font] + plt.rcParams["font.sans-serif"]
        glyphs, title = f"Chinese glyphs in {font}", f"{name}: {''.join(symbols)}"
    else:
        symbols = to_pinyin(symbols)
        glyphs = "tokens in pinyin (" + ("as asked" if pinyin else "no CJK font found") + ")"
        title = f"{name}: {' '.join(symbols)}"
    features, weights = inspection["fbank"], inspection["frame_weights"]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    extent = (0, len(features) * FRAME_SHIFT_SECONDS, 0, features.shape[1])
    top.imshow(features.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    top.set_ylabel("fbank bin")
    if weights is not None:
        edges = np.arange(len(weights) + 1) * inspection["frame_seconds"]
        bottom.stairs(weights, edges, fill=True, alpha=0.4)
    for symbol, mark in zip(symbols, inspection["token_marks"], strict=True):
        bottom.axvline(mark, color="crimson", linewidth=1)
        bottom.text(mark, 1.02, symbol, ha="center", va="bottom", fontsize=12, color="crimson",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip
    bottom.set_ylim(0, 1.15)
    bottom.set_xlim(0, transcript.duration)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel(inspection["weights_label"] or "")
    bars = f"bars: {inspection['weights_label']} per encoder frame, " if weights is not None else ""
    figure.suptitle(f"{title}\n{len(symbols)} tokens; {bars}red lines: tokens; {glyphs}", fontsize=10)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.stem + ".tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(output)
    return glyphs


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", type=Path, help="one audio file")
    add_model_arguments(parser)
    parser.add_argument("--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--pinyin", action="store_true", help="write tokens in pinyin even with a CJK font")
    args = parser.parse_args(argv)
    inspection = recognizer_from_args(args).inspect(args.audio)
    glyphs = plot(inspection, args.output, args.audio.name, find_cjk_font(), args.pinyin)
    print(f"{args.output}: {len(inspection['transcript'].tokens)} tokens, {glyphs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

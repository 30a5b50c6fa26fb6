"""Person names for the synthetic corpus's hotword evaluation (``make_synthetic_corpus.py
--name-utterances``).

A name is a surname and one or two given-name syllables. Every syllable is written with one of a
group of characters that espeak-ng's Mandarin voice says identically (homophones, same tone): a
common character and rarer ones. Training and dev names use the common character of a syllable most
of the time (``COMMON_SHARE``), so a model learns the rare characters exist but prefers the common
ones; test names are written with rare characters wherever they can be and never occur in training.
Without biasing a recogniser hears the name right and writes it wrong (the common homophones); a
hotword list that names it tells it how the name is written. The hotword list of the test split
holds every test name and as many distractors: other rare-character names that are pronounced
unlike any test name.

Name phrases join a name with a phrase part of the number corpus (``周伟下午三点十分``, ``三月五日章诚``).

As a command, it prints rare-character names, e.g. a long hotword list of names that sound unlike
those of a given list:

    python scripts/synthetic_names.py --count 1000 --unlike corpus/data_aishell/hotwords/test_names.txt
"""

import argparse
import random
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Set, Tuple

# Homophone groups (espeak-ng cmn pronounces each group's characters identically), common first.
# No group shares a syllable with the number corpus (十/时, 五/午, 月, 上 ...).
SURNAMES = (("周", "州", "洲"), ("张", "章"), ("赵", "照", "召"), ("郑", "政"), ("吴", "无"))
GIVEN = (
    ("伟", "委", "尾"),
    ("志", "智", "致"),
    ("成", "城", "诚", "程"),
    ("宇", "语", "雨"),
    ("诗", "师", "施"),
    ("维", "唯", "围"),
    ("生", "声", "升"),
    ("勇", "永", "泳"),
    ("中", "钟", "终"),
    ("玉", "育", "誉"),
)
COMMON_SHARE = 0.6  # training names: the common character of a syllable, else a rare one


def _groups(name_length: int) -> List[Sequence[str]]:
    return [SURNAMES] + [GIVEN] * (name_length - 1)


def pronunciation(name: str) -> Tuple[int, ...]:
    """The homophone group of each character: names with equal pronunciations are equal here."""
    return tuple(
        next(i for i, group in enumerate(g) if c in group)
        for g, c in zip(_groups(len(name)), name, strict=True)
    )


def training_name(rng: random.Random, excluded: Set[str]) -> str:
    """A name of common characters mostly (``COMMON_SHARE`` per syllable), never one of ``excluded``."""
    while True:
        name = ""
        for groups in _groups(rng.randint(2, 3)):
            group = rng.choice(groups)
            name += group[0] if rng.random() < COMMON_SHARE else rng.choice(group[1:])
        if name not in excluded:
            return name


def rare_name(rng: random.Random) -> str:
    """A name written with a rare character on every syllable."""
    return "".join(rng.choice(rng.choice(groups)[1:]) for groups in _groups(rng.randint(2, 3)))


def held_out_names(rng: random.Random, count: int) -> Tuple[List[str], List[str]]:
    """``count`` test names and ``count`` distractors, all rare-character names whose pronunciations
    differ and none of which starts another's (a distractor never sounds like a test name or its
    beginning, and no listed name is part of another)."""
    names: List[str] = []
    heard: List[Tuple[int, ...]] = []
    while len(names) < 2 * count:
        name = rare_name(rng)
        sound = pronunciation(name)
        if not any(sound[: len(other)] == other or other[: len(sound)] == sound for other in heard):
            heard.append(sound)
            names.append(name)
    return names[:count], names[count:]


def name_phrase(rng: random.Random, name: str, part: Callable[[random.Random], str]) -> str:
    """The name alone, before a phrase part or after it (``part`` draws a number-corpus part)."""
    kind = rng.randrange(3)
    if kind == 0:
        return name
    if kind == 1:
        return name + part(rng)
    return part(rng) + name


def rare_character_names(rng: random.Random, per_character: int, excluded: Set[str]) -> List[str]:
    """Training names that give every rare character ``per_character`` occurrences (the rest of the
    name common), so that each is in the training vocabulary; none is one of ``excluded``."""
    names = []
    for position, groups in enumerate([SURNAMES, GIVEN]):
        for group in groups:
            for rare in group[1:]:
                made = 0
                while made < per_character:
                    surname = rare if position == 0 else rng.choice(SURNAMES)[0]
                    given = rare if position == 1 else rng.choice(GIVEN)[0]
                    name = surname + given
                    if name not in excluded:
                        names.append(name)
                        made += 1
    rng.shuffle(names)
    return names


def names_unlike(listed: Sequence[str], count: int, seed: int = 0) -> List[str]:
    """``listed`` followed by other rare-character names that sound unlike every listed name
    (homophones of each other allowed: there are fewer than 1,000 pronunciations), ``count`` distinct
    names in all."""
    rng = random.Random(seed)
    heard = {pronunciation(name) for name in listed}
    names = dict.fromkeys(listed)
    while len(names) < count:
        name = rare_name(rng)
        if pronunciation(name) not in heard:
            names[name] = None
    return list(names)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=1000, help="names to print (the --unlike list's included)"
    )
    parser.add_argument(
        "--unlike",
        type=Path,
        help="a name list (one a line): printed first, then names that sound unlike them",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    listed = args.unlike.read_text(encoding="utf-8").split() if args.unlike else []
    print("\n".join(names_unlike(listed, args.count, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

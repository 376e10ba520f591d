"""Deterministic course-like text: lesson bodies, passages and questions.

Content words come from a vocabulary of about 3,000: ~170 real subject words and made-up
words of two or three syllables, drawn with a Zipf skew (a few are common, most are
rare), between English stop words — so full-text search sees term frequencies like a
real corpus's, where a specific term is in a few passages and a common one in many.
Questions name specific terms (not the 30 most common), as a student's question does.
"""

from __future__ import annotations

import random

_WORDS = """
algorithm analysis array balance budget calculus cell chemistry circuit climate code
compiler contract cost curve data database debt demand derivative design economy
electron energy entropy equation equilibrium evolution experiment function gene
geometry gradient graph gravity growth hypothesis inflation integral interest
investment kernel language lattice law ledger light limit loop market matrix memory
metabolism model molecule momentum network neuron optimisation orbit pattern
photosynthesis physics pointer population portfolio pressure probability protein
protocol query queue reaction recursion regression revenue risk sample scheduler
sequence signal software solvent spectrum statistics stock strategy stream structure
supply symmetry syntax system temperature theorem thread topology trade transaction
tree variable vector velocity voltage wave accounting grammar melody harmony rhythm
painting sculpture perspective narrative poetry rhetoric history empire revolution
treaty philosophy ethics logic argument evidence inference habitat species ecosystem
erosion glacier volcano mineral nutrition muscle skeleton vaccine immune bacteria
virus fermentation enzyme catalyst isotope radiation telescope galaxy planet comet
""".split()

_GLUE = """the of and to in is that for as with on by this are be from it an
which can we how why when each its their our into more most also""".split()

_VERBS = """explains describes shows defines measures compares changes connects drives
limits predicts reduces increases balances transforms stores""".split()


_SYLLABLES = """ka lo mi ter sun vel dra pon gri mus tal ben cor fi ra zen bal pre
sto vin qua lex mor tri dal nor ped sil gam hex jun rul tok wes yar bro cle""".split()

VOCABULARY_SIZE = 3000
COMMON = 30


def _vocabulary() -> list[str]:
    rnd = random.Random(1)
    words = list(dict.fromkeys(_WORDS))
    seen = set(words)
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rnd.choice(_SYLLABLES) for _ in range(rnd.randint(2, 3)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    rnd.shuffle(words)
    return words


def _cumulative(n: int) -> list[float]:
    total, out = 0.0, []
    for rank in range(n):
        total += 1.0 / (rank + 1)
        out.append(total)
    return out


_VOCABULARY = _vocabulary()
_CUMULATIVE = _cumulative(len(_VOCABULARY))
_SPECIFIC = _VOCABULARY[COMMON:]
_SPECIFIC_CUMULATIVE = _cumulative(len(_SPECIFIC))


class TextGen:
    def __init__(self, seed: int = 7) -> None:
        self.rnd = random.Random(seed)

    def term(self) -> str:
        return self.rnd.choices(_VOCABULARY, cum_weights=_CUMULATIVE)[0]

    def specific_term(self) -> str:
        return self.rnd.choices(_SPECIFIC, cum_weights=_SPECIFIC_CUMULATIVE)[0]

    def sentence(self) -> str:
        parts = [self.rnd.choice(_GLUE), self.term(), self.rnd.choice(_VERBS)]
        for _ in range(self.rnd.randint(5, 12)):
            parts.append(self.term() if self.rnd.random() < 0.55 else self.rnd.choice(_GLUE))
        return " ".join(parts).capitalize() + "."

    def text(self, chars: int) -> str:
        out: list[str] = []
        size = 0
        while size < chars:
            s = self.sentence()
            out.append(s)
            size += len(s) + 1
        return " ".join(out)

    def question(self) -> str:
        a, b = self.specific_term(), self.specific_term()
        form = self.rnd.choice(
            [
                "How does the {a} relate to {b}?",
                "Why does {a} change the {b} in this lesson?",
                "Can you explain {a} and {b} with an example?",
                "What is the difference between {a} and {b}?",
                "When should I use {a} instead of {b} and what about {c}?",
            ]
        )
        return form.format(a=a, b=b, c=self.specific_term())

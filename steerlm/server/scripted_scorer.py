"""The scripted attribute model: scores that tests can predict, by one rule written here.

The rule, for one string received (a ``sentences`` element of the Triton route, or the
conversation of the NIM route):

1. **The answer.** The text after the last ``<extra_id_1>Assistant\\n``, up to a trailing
   ``\\n<extra_id_2>`` (the string NeMo-Aligner's ``attribute_annotate.py`` sends ends with
   it); the whole string when it has no assistant turn. On the NIM route, the content of
   the last assistant message.
2. **Directives.** An answer that contains ``[[scores: name=value, name=value]]`` gets
   ``value`` (a float, any sign or size, so tests can check clamping) for each ``name``
   listed; a later directive overrides an earlier one; a pair that is not
   ``name=number``, or names an attribute the model does not have, is ignored.
3. **Every other attribute** gets the answer's word count over ten,
   ``len(answer.split()) / 10`` (directives included in the count).

The Triton route sends each score as the FP32 value a ``rewards`` tensor holds
(:func:`fp32`: ``0.3`` arrives as ``0.30000001192092896``), as the real server does; the
NIM route sends the score as it is. Tests compare with ``pytest.approx`` or :func:`fp32`.

This module imports nothing outside the standard library and ``steerlm.server.engine``:
the PyTriton stand-in of the integration tier (``tests/integration_triton``) imports
:func:`scripted_scores` so that the real Triton server and the dev server agree.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence

from steerlm.server.engine import RatedAnswer

#: NeMo-Aligner's ``ALL_STEERLM_ATTRIBUTES``: the order of a SteerLM attribute model's
#: outputs (NVIDIA/NeMo-Aligner@v0.7.0:examples/nlp/data/steerlm/common.py#L28-L32).
STEERLM_ATTRIBUTES: tuple[str, ...] = (
    "quality",
    "toxicity",
    "humor",
    "creativity",
    "helpfulness",
    "correctness",
    "coherence",
    "complexity",
    "verbosity",
)
#: The five HelpSteer2 attributes a hosted reward model (Nemotron-4-340B-Reward) reports.
HELPSTEER2_ATTRIBUTES: tuple[str, ...] = STEERLM_ATTRIBUTES[4:]

# The turn markers of NeMo-Aligner's annotation text
# (NVIDIA/NeMo-Aligner@v0.7.0:examples/nlp/data/steerlm/common.py#L20-L26).
_ASSISTANT_TURN = "<extra_id_1>Assistant\n"
_USER_TURN = "<extra_id_1>User\n"
_LABEL_SUFFIX = "\n<extra_id_2>"
_DIRECTIVE = re.compile(r"\[\[scores:(.*?)\]\]", re.DOTALL)


def split_sentence(text: str) -> RatedAnswer:
    """The question and answer of one received string (rule 1 of the module docstring).

    The question is the last user turn before the answer (empty when there is none); the
    stand-in scorer of the real model reads it, the scripted rule does not.
    """
    start = text.rfind(_ASSISTANT_TURN)
    if start < 0:
        return RatedAnswer(question="", answer=text.removesuffix(_LABEL_SUFFIX))
    answer = text[start + len(_ASSISTANT_TURN) :].removesuffix(_LABEL_SUFFIX)
    before = text[:start]
    user = before.rfind(_USER_TURN)
    question = before[user + len(_USER_TURN) :].removesuffix("\n") if user >= 0 else ""
    return RatedAnswer(question=question, answer=answer)


def fp32(value: float) -> float:
    """``value`` rounded to the nearest FP32 number, as a Triton FP32 tensor holds it."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def directive_scores(answer: str) -> dict[str, float]:
    """The ``name=value`` pairs of the ``[[scores: ...]]`` directives in ``answer``."""
    found: dict[str, float] = {}
    for body in _DIRECTIVE.findall(answer):
        for pair in body.split(","):
            name, sep, value = pair.partition("=")
            try:
                score = float(value)
            except ValueError:
                continue
            if sep and name.strip():
                found[name.strip()] = score
    return found


def scripted_scores(answer: str, attributes: Sequence[str]) -> list[float]:
    """The scores of ``answer`` for ``attributes``, in their order (rules 2 and 3)."""
    chosen = directive_scores(answer)
    words = len(answer.split()) / 10
    return [chosen.get(name, words) for name in attributes]


class ScriptedScorer:
    """The dev server's scorer on the scripted engine: :func:`scripted_scores` per answer."""

    name = "scripted"

    def score(self, answers: Sequence[RatedAnswer], attributes: Sequence[str]) -> list[list[float]]:
        """One row of scores per answer, one column per attribute."""
        return [scripted_scores(item.answer, attributes) for item in answers]

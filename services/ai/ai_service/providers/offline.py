"""The offline provider: answers from the retrieved passages, without a language model.

Used when no model key is configured (``make up``) and as the fallback while the model
is unavailable. It is extractive and deterministic: chat answers quote the sentences
of the course material that share the most words with the question; hints climb from
where to look, to the leading sentence of the best passage, to the sentence that best
matches; quizzes are cloze questions (a key term blanked out of a sentence, distractors
taken from the other passages' terms); reflections compare the answer's words with the
material's key terms; learning paths list the next lessons not completed yet. Every
answer says that it was made offline.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from random import Random

from ai_service.providers.base import (
    Completion,
    Delta,
    ProviderRequest,
    estimate_tokens,
)
from ai_service.retrieval import Passage
from unpuzzle_common.errors import Problem

NOTICE = (
    "Offline tutor: no language model is available, so this answer is taken from the "
    "course material."
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves explain tell please help understand mean means like get got using use
    used make made one two many much thing things way ways know does lesson course""".split()
)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _norm(word: str) -> str:
    lowered = word.lower()
    return lowered[:-1] if len(lowered) > 3 and lowered.endswith("s") else lowered


def content_terms(text: str) -> set[str]:
    """The normalised words of a text that carry meaning (no stopwords)."""
    return {_norm(w) for w in words(text) if w.lower() not in STOPWORDS and len(w) > 2}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = int(seconds)
    return (
        f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"
        if total >= 3600
        else (f"{total // 60}:{total % 60:02d}")
    )


def _where(passage: Passage) -> str:
    title = f"the lesson “{passage.lesson_title}”" if passage.lesson_title else "the course"
    if passage.start_seconds is not None:
        return f"{title}, around {_clock(passage.start_seconds)} in the video"
    return title


def best_sentences(question: str, passages: list[Passage], limit: int) -> list[tuple[int, str]]:
    """The sentences (with their passage's number, from 1) sharing most words with the question."""
    wanted = content_terms(question)
    scored: list[tuple[float, int, int, str]] = []
    for number, passage in enumerate(passages, start=1):
        for order, sentence in enumerate(_sentences(passage.content)):
            overlap = len(wanted & content_terms(sentence))
            # Earlier passages are the better-ranked ones; ties keep reading order.
            scored.append((overlap - 0.01 * number, -order, number, sentence))
    scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
    chosen = [(number, s) for score, _, number, s in scored if score > 0][:limit]
    if not chosen and passages:
        # Nothing shares a word with the question: the best-ranked passage leads.
        chosen = [(1, _sentences(passages[0].content)[0])]
    return chosen


def _key_term(sentence: str, prefer: set[str]) -> str | None:
    candidates = [w for w in words(sentence) if w.lower() not in STOPWORDS and len(w) >= 4]
    if not candidates:
        return None
    return max(candidates, key=lambda w: (_norm(w) in prefer, len(w)))


def _terms_of(passages: Iterable[Passage]) -> list[str]:
    seen: dict[str, str] = {}
    for passage in passages:
        for word in words(passage.content):
            if word.lower() not in STOPWORDS and len(word) >= 4:
                seen.setdefault(word.lower(), word)
    return list(seen.values())


class NotEnoughMaterial(Problem):
    """The offline provider found nothing in the course to build the answer from."""

    status, slug = 422, "not-enough-material"


class OfflineProvider:
    name = "offline"
    model = "extractive"
    offline = True
    notice = NOTICE

    async def aclose(self) -> None:
        return None

    async def complete(self, request: ProviderRequest) -> Completion:
        build = {
            "chat": self._chat,
            "hint": self._hint,
            "quiz": self._quiz,
            "reflection": self._reflection,
            "path": self._path,
        }[request.task]
        text = build(request)
        return Completion(
            text=text,
            prompt_tokens=0,
            completion_tokens=estimate_tokens(text),
            provider=self.name,
            model=self.model,
            offline=True,
            notice=NOTICE,
        )

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]:
        completion = await self.complete(request)
        for piece in re.findall(r"\S+\s*", completion.text):
            yield Delta(piece)
        yield Delta(prompt_tokens=0, completion_tokens=completion.completion_tokens)

    # -- the answers --------------------------------------------------------------------

    def _chat(self, request: ProviderRequest) -> str:
        if not request.passages:
            return (
                "(Offline tutor) I could not find this in the course material. Try other "
                "words, or ask about a topic of the course."
            )
        quoted = best_sentences(request.question, request.passages, limit=3)
        lines = [f"- {sentence} [{number}]" for number, sentence in quoted]
        return (
            "(Offline tutor — no language model is available.) "
            "Here is what the course material says:\n" + "\n".join(lines)
        )

    def _hint(self, request: ProviderRequest) -> str:
        concept = request.question.strip() or "this"
        if not request.passages:
            hints = [
                {
                    "level": 1,
                    "text": f"I could not find “{concept}” in this course's material. "
                    "Try naming the idea with the words the lessons use.",
                }
            ]
            return json.dumps({"hints": hints})
        best = request.passages[0]
        leading = _sentences(best.content)[0]
        closest = next(
            (s for _, s in best_sentences(concept, [best], limit=3) if s != leading), None
        )
        hints = [
            {
                "level": 1,
                "text": f"Look again at {_where(best)}. What does it say about {concept}?",
            },
            {"level": 2, "text": f"Start from this idea: {leading}"},
        ]
        if closest:
            hints.append({"level": 3, "text": f"Closer still: {closest}"})
        return json.dumps({"hints": hints})

    def _quiz(self, request: ProviderRequest) -> str:
        count = int(request.inputs.get("count", 3))
        prefer = content_terms(request.question)
        questions: list[dict] = []
        used_sentences: set[str] = set()
        # Prefer sentences with some context; short lessons still get short ones.
        for min_words in (5, 3):
            for index, passage in enumerate(request.passages):
                if len(questions) >= count:
                    break
                others = [p for i, p in enumerate(request.passages) if i != index]
                for sentence in _sentences(passage.content):
                    term = _key_term(sentence, prefer)
                    if term is None or sentence in used_sentences:
                        continue
                    if len(words(sentence)) < min_words:
                        continue
                    question = self._cloze(sentence, term, others, passage)
                    if question:
                        questions.append(question)
                        used_sentences.add(sentence)
                        break
            if questions:
                break
        if not questions:
            raise NotEnoughMaterial(
                "The course has too little text for a quiz yet; the tutor is offline and "
                "builds questions from the lessons' sentences."
            )
        return json.dumps({"questions": questions})

    def _cloze(
        self, sentence: str, term: str, others: list[Passage], source: Passage
    ) -> dict | None:
        rng = Random(zlib.crc32(sentence.encode()))
        in_sentence = {w.lower() for w in words(sentence)}
        pool = [t for t in _terms_of(others) if t.lower() not in in_sentence]
        if len(pool) < 3:
            pool += [t for t in _terms_of([source]) if t.lower() not in in_sentence]
        pool = list(dict.fromkeys(pool))
        # Distractors of a similar length look as plausible as the answer.
        pool.sort(key=lambda t: (abs(len(t) - len(term)), t.lower()))
        distractors = pool[:3]
        if not distractors:
            return None
        choices = [term, *distractors]
        rng.shuffle(choices)
        blanked = re.sub(rf"\b{re.escape(term)}\b", "_____", sentence, count=1)
        return {
            "question": f"Fill in the blank: {blanked}",
            "choices": choices,
            "answer_index": choices.index(term),
            "explanation": f"{_where(source)[0].upper()}{_where(source)[1:]} says: {sentence}",
        }

    def _reflection(self, request: ProviderRequest) -> str:
        answer = str(request.inputs.get("answer", ""))
        if not request.passages:
            return json.dumps(
                {
                    "feedback": "I could not find material in this course to compare your "
                    "answer with.",
                    "strengths": [],
                    "improvements": [],
                }
            )
        material = " ".join(p.content for p in request.passages[:2])
        counts = Counter(_norm(w) for w in words(material) if w.lower() not in STOPWORDS)
        focus = content_terms(request.question)
        key_terms = [
            t
            for t, _ in sorted(
                counts.items(), key=lambda kv: (kv[0] in focus, kv[1], len(kv[0])), reverse=True
            )
            if len(t) >= 4
        ][:8]
        mentioned = content_terms(answer)
        covered = [t for t in key_terms if t in mentioned]
        missing = [t for t in key_terms if t not in mentioned]
        score = round(100 * len(covered) / len(key_terms)) if key_terms else None
        reference = best_sentences(request.question or answer, request.passages, limit=1)
        strengths = [f"You use the idea of “{t}”, which the material covers." for t in covered[:3]]
        improvements = [
            f"The material also relies on “{t}”: how does it fit in?" for t in missing[:3]
        ]
        feedback = (
            f"Your answer covers {len(covered)} of the {len(key_terms)} key ideas of the "
            f"material I compared it with. Compare with: “{reference[0][1]}”"
            if reference
            else "Compare your answer with the lesson text."
        )
        return json.dumps(
            {
                "feedback": feedback,
                "strengths": strengths,
                "improvements": improvements,
                "score": score,
            }
        )

    def _path(self, request: ProviderRequest) -> str:
        candidates = list(request.inputs.get("candidates", []))
        relevant = [str(i) for i in request.inputs.get("relevant_lesson_ids", [])]
        topic = request.question.strip()

        def order(candidate: dict) -> tuple[int, int]:
            lesson = str(candidate["lesson_id"])
            return (
                relevant.index(lesson) if lesson in relevant else len(relevant),
                candidate["position"],
            )

        steps = []
        for candidate in sorted(candidates, key=order)[:3]:
            if topic and str(candidate["lesson_id"]) in relevant:
                reason = f"It covers “{topic}”, and you have not completed it yet."
            else:
                reason = "It is the next lesson of the course you have not completed."
            steps.append({"lesson_id": str(candidate["lesson_id"]), "reason": reason})
        return json.dumps({"next_lessons": steps})

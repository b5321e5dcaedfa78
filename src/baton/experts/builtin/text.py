"""Text experts without downloaded models: VADER sentiment, YAKE keywords, TF-IDF similarity and extractive summaries.

All of them read English best: VADER's lexicon is English, YAKE and the summariser use English stop
words. Nothing here writes or rewrites text; each result is a score, a label or the input's own words.
"""

from __future__ import annotations

import math
import re
from typing import Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import Resource

__all__ = ["split_sentences"]

CARDS = [
    ModelCard(
        id="builtin/vader-sentiment",
        task="text-classification",
        backend="builtin",
        description="VADER rule-based sentiment for English (social-media style text): positive, negative or "
        "neutral with its compound score (-1 to 1) and the positive/neutral/negative shares. No other labels "
        "(no topics, no emotions), no sarcasm, other languages mostly read as neutral.",
        factory="baton.experts.builtin.text:VaderSentiment",
        popularity=4_800,
        popularity_source="GitHub stars of cjhutto/vaderSentiment",
        memory_mb=30,
        licence="MIT",
        python=("vaderSentiment",),
        extra="text",
    ),
    ModelCard(
        id="builtin/yake",
        task="keyword-extraction",
        backend="builtin",
        description="YAKE statistical keyword extraction (no model): the text's most telling words and two-word "
        "phrases, best first, comma-separated. Works on a single text; weak on a few words. "
        "Option: count (how many, default 8).",
        factory="baton.experts.builtin.text:YakeKeywords",
        popularity=1_700,
        popularity_source="GitHub stars of LIAAD/yake",
        memory_mb=40,
        licence="LGPL-3.0",
        python=("yake",),
        extra="text",
    ),
    ModelCard(
        id="builtin/tfidf-similarity",
        task="sentence-similarity",
        backend="builtin",
        description="Lexical similarity of two texts, 0 to 1: the mean TF-IDF cosine over words and over "
        "character 2-4-grams (scikit-learn). Sees shared words and word forms, not meaning: synonyms score "
        "low, and texts in different languages near 0.",
        factory="baton.experts.builtin.text:TfidfSimilarity",
        popularity=65_000,
        popularity_source="GitHub stars of scikit-learn/scikit-learn",
        memory_mb=80,
        licence="BSD-3-Clause",
        python=("sklearn",),
        extra="text",
    ),
    ModelCard(
        id="builtin/tfidf-summarizer",
        task="summarization",
        backend="builtin",
        description="Extractive summary: keeps the sentences closest to the text's TF-IDF centre (skipping "
        "near-repeats), in their original order; it never writes new sentences. Texts of three sentences "
        "or fewer come back as they are. Option: sentences (how many to keep; default a third, at most 7).",
        factory="baton.experts.builtin.text:ExtractiveSummarizer",
        popularity=65_000,
        popularity_source="GitHub stars of scikit-learn/scikit-learn",
        memory_mb=80,
        licence="BSD-3-Clause",
        python=("sklearn",),
        extra="text",
    ),
]


def _text_of(inputs: dict[str, Resource], port: str = "text", what: str = "work on") -> str:
    text = inputs[port].as_text().strip()
    if not text:
        raise ExpertError(f"there is no text to {what}: the input text is empty")
    return text


def _count(options: dict[str, str], name: str, default: int, most: int) -> int:
    """A positive whole number from an option written leniently ("5", "5 sentences", "top 5")."""
    given = options.get(name, "").strip()
    if not given:
        return default
    found = re.search(r"\d+", given)
    if found is None:
        raise ExpertError(f"{name} must be a whole number, not '{given}'")
    value = int(found.group(0))
    if not 1 <= value <= most:
        raise ExpertError(f"{name} {value} is out of range; use 1 to {most}")
    return value


# sentiment


class VaderSentiment(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        text = _text_of(inputs, what="classify")
        scores = SentimentIntensityAnalyzer().polarity_scores(text)
        compound = float(scores["compound"])
        # VADER's own thresholds: compound >= 0.05 is positive, <= -0.05 negative
        label = "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"
        result = {
            "label": label,
            "compound": round(compound, 4),
            "positive": float(scores["pos"]),
            "neutral": float(scores["neu"]),
            "negative": float(scores["neg"]),
        }
        return {"text": Resource.text(f"{label} (compound {compound:.2f})"), "json": Resource.json_value(result)}


# keywords


class YakeKeywords(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import yake

        text = _text_of(inputs, what="extract keywords from")
        count = _count(options, "count", 8, 100)
        extractor = yake.KeywordExtractor(lan="en", n=2, dedupLim=0.7, top=count * 4)
        keywords: list[str] = []
        covered: set[str] = set()
        for phrase, _score in extractor.extract_keywords(text):  # best (lowest score) first
            words = {w.lower() for w in phrase.split()}
            if words <= covered:
                continue  # "Napoleon" after "Napoleon Bonaparte" says nothing new
            keywords.append(phrase)
            covered |= words
            if len(keywords) == count:
                break
        if not keywords:
            raise ExpertError(
                "found no keywords: the text has no content words (only stop words, numbers or punctuation)"
            )
        return {"text": Resource.text(", ".join(keywords))}


# similarity


def _cosine_pair(vectorizer: Any, first: str, second: str) -> float | None:
    from sklearn.metrics.pairwise import cosine_similarity

    try:
        matrix = vectorizer.fit_transform([first, second])
    except ValueError:  # an empty vocabulary: nothing to compare this way
        return None
    if matrix[0].nnz == 0 or matrix[1].nnz == 0:
        return 0.0
    return float(cosine_similarity(matrix[0], matrix[1])[0, 0])


class TfidfSimilarity(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        first = _text_of(inputs, "text", "compare")
        second = _text_of(inputs, "text2", "compare")
        words = _cosine_pair(TfidfVectorizer(stop_words="english", sublinear_tf=True), first, second)
        if words is None:  # only stop words: compare them rather than nothing
            words = _cosine_pair(TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"), first, second)
        chars = _cosine_pair(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True), first, second)
        parts = [s for s in (words, chars) if s is not None]
        if not parts:
            raise ExpertError("the texts have no letters or digits to compare")
        score = min(1.0, max(0.0, sum(parts) / len(parts)))
        if " ".join(first.lower().split()) == " ".join(second.lower().split()):
            score = 1.0  # the same text, whatever rounding says
        result = {
            "score": round(score, 4),
            "word_cosine": None if words is None else round(words, 4),
            "char_cosine": None if chars is None else round(chars, 4),
        }
        return {"text": Resource.text(f"similarity {score:.2f}"), "json": Resource.json_value(result)}


# summaries

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "corp",
    "no", "fig", "approx", "dept", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "u.s", "u.k", "a.m", "p.m", "mt", "gen", "col", "lt", "sgt", "rev", "vol", "al",
}  # fmt: skip
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_BULLET = re.compile(r"\n\s*(?=(?:[-*•]|\d+[.)])\s)")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: split after . ! ? before a capital or digit, not after Mr./e.g./initials; paragraphs
    and list items always end a sentence. Whitespace inside a sentence is collapsed."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n|" + _BULLET.pattern, text):
        block = block.strip()
        start = 0
        for match in _BOUNDARY.finditer(block):
            before = block[start : match.start() + 1].split()
            last = before[-1].rstrip(".").lower() if before else ""
            if last in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", last):
                continue  # "Dr. Smith", "J. K. Rowling", "U.S.A. today"
            sentences.append(block[start : match.end()])
            start = match.end()
        sentences.append(block[start:])
    return [" ".join(s.split()) for s in sentences if s.strip()]


class ExtractiveSummarizer(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        text = _text_of(inputs, what="summarize")
        sentences = split_sentences(text)
        default = 0 if len(sentences) <= 3 else min(7, math.ceil(len(sentences) / 3))
        keep = _count(options, "sentences", default, 1000)
        if keep == 0 or keep >= len(sentences):
            return {"text": Resource.text(" ".join(sentences))}
        chosen = _pick(sentences, keep)
        return {"text": Resource.text(" ".join(sentences[i] for i in sorted(chosen)))}


def _pick(sentences: list[str], keep: int) -> list[int]:
    """Indexes of the ``keep`` sentences nearest the TF-IDF centroid, skipping near-repeats of chosen ones."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    try:
        matrix = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(sentences)
    except ValueError:  # no content words at all: the lead is the best guess
        return list(range(keep))
    centroid = np.asarray(matrix.mean(axis=0))
    scores = cosine_similarity(matrix, centroid).ravel()
    for index, sentence in enumerate(sentences):
        if len(sentence.split()) < 5:
            scores[index] *= 0.5  # fragments and headings say little on their own
    scores[0] += 0.05  # the opening sentence usually states the subject
    pairwise = cosine_similarity(matrix)
    chosen: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if all(pairwise[index, other] < 0.8 for other in chosen):
            chosen.append(int(index))
        if len(chosen) == keep:
            return chosen
    rest = [i for i in np.argsort(-scores, kind="stable") if int(i) not in chosen]
    return chosen + [int(i) for i in rest[: keep - len(chosen)]]

"""Pattern-based text scanning: URLs in a text (url-extractor) and tagged spans (token-classification).

No model and no downloaded data: regular expressions find e-mail addresses, URLs, money amounts,
percentages, dates, times and numbers, and a capitalisation heuristic guesses proper names.
``find_urls`` is shared with the downloaders, whose ``url`` input may be a whole sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import Resource

__all__ = ["Entity", "find_entities", "find_urls"]

CARDS = [
    ModelCard(
        id="builtin/url-regex",
        task="url-extractor",
        backend="builtin",
        description="Finds web addresses in a text with patterns: http(s):// links, www. addresses and bare "
        "domains with a common ending (example.com/page), localhost with a port or path; gives the first one as a URL (https:// added when "
        "no scheme is written). Other schemes (ftp, mailto) and file names are not URLs to it.",
        factory="baton.experts.builtin.textscan:UrlExtractor",
        popularity=0,
        popularity_source="baton's own pattern matcher",
        memory_mb=5,
        licence="MIT",
    ),
    ModelCard(
        id="builtin/regex-tagger",
        task="token-classification",
        backend="builtin",
        description="Tags spans of English text with patterns: DATE, TIME, NUMBER, EMAIL, URL, MONEY, PERCENT, "
        "and NAME for capitalised phrases (a guess: not typed as person, place or organisation, and a lone "
        "capitalised word that starts a sentence is missed). Lists 'TYPE: value' lines and entities with "
        "character offsets.",
        factory="baton.experts.builtin.textscan:RegexTagger",
        popularity=0,
        popularity_source="baton's own pattern matcher",
        memory_mb=5,
        licence="MIT",
    ),
]

# common top-level domains a bare address ("example.com/page") may end with; short ones that are also
# English words (in, it, at, be, no, to, me, us, is) count only after www. or a scheme
_TLDS = (
    "com|org|net|edu|gov|mil|int|io|ai|app|dev|info|biz|xyz|site|online|tech|blog|news|shop|store|cloud|page|"
    "co|uk|de|fr|es|nl|eu|ca|au|jp|cn|ru|br|ch|se|fi|dk|pl|cz|pt|gr|ie|nz|za|mx|ar|kr|tw|hk|sg|ly|gl|tv|fm|ly"
)
_TAIL = r"(?:[/?#][^\s<>\"'`]*)?"
_URL_PATTERNS = [
    re.compile(r"\bhttps?://(?:\[[0-9a-f:.]+\](?::\d{1,5})?|[^\s/?#<>\"'`]+)" + _TAIL, re.IGNORECASE),
    re.compile(r"(?<![\w.@/:-])www\.[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d{1,5})?" + _TAIL, re.IGNORECASE),
    re.compile(
        r"(?<![\w.@/:-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:" + _TLDS + r")(?::\d{1,5})?(?![\w-])" + _TAIL,
        re.IGNORECASE,
    ),
    re.compile(r"(?<![\w.@/:-])localhost(?::\d{1,5}(?:[/?#][^\s<>\"'`]*)?|[/?#][^\s<>\"'`]*)", re.IGNORECASE),
]
_EMAIL = re.compile(r"(?<![\w.+-])[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _trim(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets or quotes that follow a URL."""
    while url:
        last = url[-1]
        if last in ".,;:!?'\"*" or (last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last])):
            url = url[:-1]
        else:
            break
    return url


def _url_spans(text: str, taken: list[tuple[int, int]] | None = None) -> list[tuple[int, int, str]]:
    """(start, end, url as written) for each URL in the text, in order; e-mail addresses are not URLs."""
    taken = list(taken or []) + [m.span() for m in _EMAIL.finditer(text)]
    found: list[tuple[int, int, str]] = []
    for pattern in _URL_PATTERNS:
        for match in pattern.finditer(text):
            url = _trim(match.group(0))
            start, end = match.start(), match.start() + len(url)
            if "://" in url and not url.split("://", 1)[1].strip("/"):
                continue  # "http://" alone
            if any(start < b and a < end for a, b in taken):
                continue
            taken.append((start, end))
            found.append((start, end, url))
    return sorted(found)


def _normalize(url: str) -> str:
    return url if re.match(r"https?://", url, re.IGNORECASE) else f"https://{url}"


def find_urls(text: str) -> list[str]:
    """The http(s) URLs a text contains, in order and without repeats; a missing scheme becomes https://."""
    return list(dict.fromkeys(_normalize(url) for _, _, url in _url_spans(text)))


class UrlExtractor(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        text = inputs["text"].as_text()
        urls = find_urls(text)
        if not urls:
            shown = " ".join(text.split())
            shown = shown if len(shown) <= 80 else shown[:79] + "…"
            raise ExpertError(
                f"no URL in the text ('{shown}'); a URL looks like https://example.com/page or www.example.com"
            )
        return {"url": Resource(kind="url", value=urls[0])}


# token classification


@dataclass(frozen=True, slots=True)
class Entity:
    type: str
    text: str
    start: int
    end: int


_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAYS = r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"
_ORD = r"\d{1,2}(?:st|nd|rd|th)?"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s?(?:thousand|million|billion|trillion|[kKmM]\b|bn\b))?"
_CURRENCY_WORDS = (
    r"(?:dollars?|euros?|pounds?(?: sterling)?|yen|yuan|rupees?|francs?|cents?|bucks|USD|EUR|GBP|JPY|CHF|CNY|INR)"
)

_ENTITY_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "MONEY",
        re.compile(
            rf"(?:[$€£¥₹]|\b(?:USD|EUR|GBP|JPY|CHF|CNY|INR|US\$)\s?)(?:{_NUM}){_SCALE}"
            rf"|\b(?:{_NUM}){_SCALE}\s?{_CURRENCY_WORDS}\b"
        ),
    ),
    ("PERCENT", re.compile(rf"(?<![\w.])(?:{_NUM})\s?(?:%|percent\b|per cent\b)")),
    (
        "DATE",
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{1,2}\.\d{1,2}\.\d{4}\b"
            rf"|\b(?:{_DAYS},?\s+)?(?:the\s+)?{_ORD}\s+(?:of\s+)?{_MONTHS}(?:,?\s+\d{{4}})?(?!\w)"
            rf"|\b(?:{_DAYS},?\s+)?{_MONTHS}\s+{_ORD}(?:,?\s+\d{{4}})?(?!\w)"
            rf"|\b{_MONTHS}\s+\d{{4}}\b"
            rf"|\b{_DAYS}\b"
            r"|\b(?:January|February|March|April|June|July|August|September|October|November|December)\b"
            r"|\b(?i:yesterday|today|tomorrow|tonight)\b"
            r"|\b(?i:last|next|this)\s+(?i:week|month|year|weekend|morning|afternoon|evening|night)\b"
            r"|(?<![\w/-])(?:1[5-9]|20)\d0s\b"
            r"|\b(?i:in|since|until|by|from|during|year|of)\s+(?P<v>(?:1[5-9]|20)\d{2})(?![\w/-]|\.\d)"
        ),
    ),
    (
        "TIME",
        re.compile(
            r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?(?:[ap]\.m\.|[ap]m\b))?"
            r"|\b\d{1,2}\s?(?:[ap]\.m\.|[ap]m\b)"
            r"|\b(?:noon|midnight)\b",
            re.IGNORECASE,
        ),
    ),
    ("NUMBER", re.compile(rf"(?<![\w.])[-+]?(?:{_NUM})(?:st|nd|rd|th)?(?![\w])")),
]

_CAPITALISED = re.compile(
    r"\b(?:(?:Dr|Mr|Mrs|Ms|Prof|Sir|St)\.?\s+)?[A-Z][\w'’&-]*(?:\s+(?:(?:of|de|del|van|von|der|da|di|la|le|the|and|&)\s+)?[A-Z][\w'’&-]*)*"
)
_LEADING = re.compile(r"^(?:The|A|An|This|That|These|Those|My|Our|Your|His|Her|Their|Its)\s+")
_NOT_NAMES = {"I", "I'm", "I've", "I'll", "I'd", "OK", "Okay"}


def _sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'“‘([")
    return not before or before[-1] in ".!?:\n;" or before.endswith("\n")


def _names(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _CAPITALISED.finditer(text):
        start, phrase = match.start(), match.group(0)
        leading = _LEADING.match(phrase)
        if leading:  # "The Battle of Waterloo" -> "Battle of Waterloo"
            start, phrase = start + leading.end(), phrase[leading.end() :]
        phrase = re.sub(r"['’]s$", "", phrase)
        words = phrase.split()
        if not words or phrase in _NOT_NAMES:
            continue
        if len(words) == 1 and (_sentence_start(text, start) or len(phrase) < 2):
            continue  # a lone capitalised word that starts a sentence is just a sentence start
        spans.append((start, start + len(phrase)))
    return spans


def find_entities(text: str) -> list[Entity]:
    """Non-overlapping tagged spans in order of appearance; earlier types win overlaps (EMAIL first, NAME last)."""
    taken: list[tuple[int, int]] = []
    found: list[Entity] = []

    def add(kind: str, start: int, end: int) -> None:
        if end > start and not any(start < b and a < end for a, b in taken):
            taken.append((start, end))
            found.append(Entity(kind, text[start:end], start, end))

    for match in _EMAIL.finditer(text):
        add("EMAIL", *match.span())
    for start, end, _ in _url_spans(text, taken):
        add("URL", start, end)
    for kind, pattern in _ENTITY_PATTERNS:
        for match in pattern.finditer(text):
            add(kind, *match.span("v" if "v" in pattern.groupindex and match.group("v") else 0))
    for start, end in _names(text):
        add("NAME", start, end)
    return sorted(found, key=lambda e: e.start)


class RegexTagger(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        text = inputs["text"].as_text()
        entities = find_entities(text)
        lines = [f"{e.type}: {e.text}" for e in entities]
        nothing = "no dates, times, numbers, e-mails, URLs, money amounts, percentages or names found"
        summary = "\n".join(lines) or (nothing if text.strip() else f"{nothing}: the text is empty")
        records = [{"type": e.type, "text": e.text, "start": e.start, "end": e.end} for e in entities]
        return {"text": Resource.text(summary), "json": Resource.json_value(records)}

"""document-question-answering: Tesseract reads the document, then a rule-based search answers.

The search handles the questions forms and invoices raise: "what is the total / the date / the
invoice number / the author / the address", "what is the main topic" (the title and opening), the
highest number, and "what does it say about X" (the line that mentions X). It finds the line whose
words match the question and returns the value after the label. It does not reason or paraphrase,
and says so when the text holds no matching line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import Resource

__all__ = ["CARDS", "Line", "TesseractDocQA", "answer_question", "read_lines"]

CARDS = [
    ModelCard(
        id="builtin/tesseract-docqa",
        task="document-question-answering",
        backend="builtin",
        description="Tesseract OCR plus a rule-based answer search: finds the line whose words match the "
        "question and returns the value after its label (totals, dates, invoice numbers, names, addresses), "
        "the title and opening for 'what is it about', or the highest number. Printed English text only; "
        "no reasoning, no understanding of pictures, charts or handwriting; says when nothing matches.",
        factory="baton.experts.builtin.docqa:TesseractDocQA",
        popularity=60_000,
        popularity_source="GitHub stars of tesseract-ocr/tesseract",
        memory_mb=80,
        licence="Apache-2.0",
        python=("pytesseract", "PIL"),
        extra="vision",
        binaries=("tesseract",),
        apt=("tesseract-ocr",),
    )
]


@dataclass(frozen=True)
class Line:
    """One line of OCR text and the height of its letters in pixels (bigger for titles)."""

    text: str
    height: float
    top: int


def read_lines(path: Path, lang: str = "eng") -> list[Line]:
    """The printed lines of the document image at ``path``, in reading order (Tesseract)."""
    import pytesseract
    from PIL import Image, ImageOps, UnidentifiedImageError

    from baton.media import MAX_IMAGE_PIXELS

    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise ExpertError(
                    f"the image is {opened.width}x{opened.height} pixels, over the limit of {MAX_IMAGE_PIXELS:,}; "
                    "resize it first"
                )
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")  # flatten onto white: transparent pixels often hide black
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
            elif image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            image.load()
    except ExpertError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ExpertError(f"'{path.name}' is not a readable image ({exc}); re-save it as PNG or JPEG") from None
    if min(image.size) < 300:  # Tesseract reads small glyphs poorly; upscale first
        scale = 300 / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    elif max(image.size) > 4000:  # huge scans take minutes and gain nothing
        scale = 4000 / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    try:
        data = pytesseract.image_to_data(image, lang=lang, output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractNotFoundError:
        raise ExpertError("the tesseract program is not installed: sudo apt-get install tesseract-ocr") from None
    except pytesseract.TesseractError as exc:
        raise ExpertError(f"Tesseract could not read the image: {exc.message}") from None
    groups: dict[tuple[int, int, int], list[tuple[str, int, int]]] = {}
    for index, word in enumerate(data["text"]):
        word = word.strip()
        if not word or float(data["conf"][index]) < 30:
            continue
        key = (int(data["block_num"][index]), int(data["par_num"][index]), int(data["line_num"][index]))
        groups.setdefault(key, []).append((word, int(data["height"][index]), int(data["top"][index])))
    lines = []
    for words in groups.values():
        text = " ".join(w for w, _, _ in words)
        if not re.search(r"[A-Za-z0-9]{2}", text):  # specks and rules read as '|', '~', '—'
            continue
        heights = sorted(h for _, h, _ in words)
        lines.append(Line(text=text, height=float(heights[len(heights) // 2]), top=min(t for _, _, t in words)))
    return lines


# ---------------------------------------------------------------- the answer search

_STOP = set(
    ["a", "an", "the", "of", "to", "in", "on", "at", "for", "from", "with", "as", "by", "and", "or", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "this", "that", "these", "those", "it", "its", "i", "me", "my", "we", "our", "you", "your", "can", "could", "would", "will", "shall", "should", "may", "might", "please", "tell", "give", "show", "find", "say", "says", "said", "let", "know", "about", "there", "here", "document", "documents", "image", "picture", "photo", "file", "page", "text", "paper", "form", "scan", "written", "mentioned", "stated", "listed", "given", "shown", "specified", "indicated", "according", "per", "referred", "refer", "recorded", "contained", "present", "noted", "any", "some", "main", "key", "need", "want", "value", "one", "ones"]
)  # fmt: skip

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
DATE = re.compile(
    rf"\b(?:\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}|\d{{1,2}}[-/.]\d{{1,2}}[-/.]\d{{2,4}}"
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?|{_MONTH}\s+{_DAY}(?:,?\s+\d{{4}})?|{_MONTH}\s+\d{{4}})\b",
    re.IGNORECASE,
)
MONEY = re.compile(
    r"(?:[$€£¥]\s?|\b(?:USD|EUR|GBP|CHF|Rs\.?)\s?)?-?\d{1,3}(?:[,\s]\d{3})*(?:[.,]\d{1,2})?(?!\d)"
    r"(?:\s?(?:USD|EUR|GBP|CHF|dollars?|euros?|pounds?)\b)?|(?:[$€£¥]\s?)?-?\d+(?:[.,]\d{1,2})?",
    re.IGNORECASE,
)
NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:,\d{3})*(?:\.\d+)?(?![\w-])")
IDENT = re.compile(r"[A-Za-z0-9#][A-Za-z0-9\-/.#]*\d[A-Za-z0-9\-/.]*")

_TOPIC_WORDS = [
    "topic",
    "theme",
    "subject",
    "title",
    "heading",
    "headline",
    "about",
    "gist",
    "summary",
    "central",
    "focus",
    "focal",
    "purpose",
    "primary",
    "principal",
    "overview",
    "informative",
    "details",
    "content",
    "idea",
    "concept",
    "deal",
    "discuss",
    "discussed",
    "matter",
    "main",
    "key",
    "point",
]

_KINDS = (
    ("topic", r"\b(topics?|themes?|subjects?|titled?|headings?|headlines?|about|gist|summar\w*|central|focus|focal|"
     r"purpose|primary|principal|overview|informative|details|content|contents|idea|concepts?|deal with|discuss\w*)\b"),
    ("money", r"\b(total|amount|sum|pay|paid|payable|due|balance|price|cost|costs|fee|fees|charge|charges|revenue|"
     r"subtotal|tax|vat|how much|owed?|spent|salary|budget)\b"),
    ("date", r"\b(date|dated|when|day|deadline|year|month|created|issued|signed on|held|take place)\b"),
    ("id", r"\b(number|no|#|id|reference|ref|code|account|order|serial|receipt)\b"),
    ("who", r"\b(who|author|authors|name|written by|signed|sender|recipient|customer|client|company|vendor|"
     r"seller|buyer|bill to|billed to|issuer|organi[sz]er|contact)\b"),
    ("where", r"\b(where|address|location|located|venue|city|place|country)\b"),
    ("max", r"\b(highest|largest|maximum|max|biggest|greatest|most|top)\b"),
)  # fmt: skip


def _words(text: str) -> list[str]:
    return [_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower())]


def _stem(word: str) -> str:
    word = re.sub(r"^(\d+)(st|nd|rd|th)$", r"\1", word)
    if len(word) > 5 and word.endswith("ed"):
        return word[:-2]
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def question_kind(question: str) -> str:
    """What the question asks for: topic, money, date, id, who, where, max, or text."""
    lowered = question.lower()
    found = [kind for kind, pattern in _KINDS if re.search(pattern, lowered)]
    for pattern, kind in ((r"\bwhen\b|\bdates?\b", "date"), (r"\bwhere\b", "where"), (r"\bwho\b", "who")):
        if re.search(pattern, lowered):
            return kind
    # a label word names the value even in a topic-sounding question ("the main total", "key dates")
    for kind in ("money", "date", "id", "who", "where"):
        if kind in found:
            if kind == "id" and not re.search(r"\b(number|no|#|id|reference|ref|code)\b", lowered):
                continue
            return kind
    if "max" in found and "topic" not in found:
        return "max"
    if "topic" in found:
        return "topic"
    return "max" if "max" in found else "text"


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _after_label(line: str, keys: set[str]) -> str:
    """The text after the last question word found in ``line`` (its label), trimmed of ':', '-', '#'."""
    end = 0
    for match in re.finditer(r"[A-Za-z0-9]+", line):
        if _stem(match.group().lower()) in keys:
            end = match.end()
    rest = line[end:].strip(" \t:;=-–—#.|")
    while True:  # "Bill to: Jane" -> "Jane", "due by 5 May" -> "5 May"
        shorter = re.sub(r"^(?:to|by|of|for|is|are|was|on|at|from|in)\b[\s:;=\-#.]*", "", rest, flags=re.IGNORECASE)
        if shorter == rest:
            return rest
        rest = shorter


def _value(kind: str, text: str) -> str | None:
    """The value of ``kind`` in ``text``, or None; for text-like kinds the text itself when not empty."""
    if kind == "money":
        amounts = [m.group().strip() for m in MONEY.finditer(DATE.sub(" ", text)) if re.search(r"\d", m.group())]
        return amounts[-1] if amounts else None
    if kind == "date":
        match = DATE.search(text)
        return match.group() if match else None
    if kind == "id":
        match = IDENT.search(text)
        return match.group() if match else None
    return text.strip() or None


def answer_question(question: str, lines: list[Line]) -> str:
    """An answer to ``question`` from the document's OCR ``lines``, or a clear statement that none was found."""
    quoted = _clip(question, 200)
    if not lines:
        return (
            f"No printed text could be read in this image, so “{quoted}” cannot be answered from it "
            "(this document reader uses Tesseract OCR: printed text only, not handwriting or pictures)."
        )
    kind = question_kind(question)
    keys = {w for w in _words(question) if (w not in _STOP and len(w) > 1) or w.isdigit()}
    if kind == "topic":
        specific = keys - set(_words(" ".join(_TOPIC_WORDS)))
        if not any(specific & set(_words(line.text)) for line in lines):
            return _topic(lines)
        kind = "text"  # "what does it say about toner": the line on toner, not the title
    candidates: list[tuple[int, int, int, str]] = []  # overlap, quality, line index, answer
    for index, line in enumerate(lines):
        overlap = len(keys & set(_words(line.text)))
        if not overlap:
            continue
        text = line.text
        labelled = kind != "text" or re.search(r"[:=]", text)  # a plain sentence is its own answer
        value = _value(kind, _after_label(text, keys) if labelled else text)
        if value is None and kind in ("money", "date", "id"):
            value = _value(kind, text)
        if value is not None:
            if kind in ("text", "max") and value == text.strip():
                found = f"The document says: “{_clip(text)}”"
            else:
                found = f"{value} (from the document's line “{_clip(text, 160)}”)"
        elif index + 1 < len(lines) and kind not in ("text", "max"):
            below = lines[index + 1].text  # the value printed under its label
            value = _value(kind, below)
            if value is None:
                continue
            found = f"{value} (the document's line “{_clip(text, 120)}” is followed by “{_clip(below, 120)}”)"
        else:
            continue
        quality = 1 if kind != "money" or re.search(r"[$€£¥]|[A-Z]{3}|[.,]\d\d\b", value) else 0
        candidates.append((overlap, quality, index, found))
    if candidates:  # most question words, then money that looks like money, then the later line
        return max(candidates)[3]
    return _fallback(kind, quoted, lines)


def _topic(lines: list[Line]) -> str:
    head = lines[: max(3, len(lines) // 3)]
    tallest = max(head, key=lambda line: line.height)
    typical = sorted(line.height for line in lines)[len(lines) // 2]
    title = tallest if tallest.height >= 1.2 * typical else lines[0]
    body = " ".join(line.text for line in lines if line is not title)
    opening = f" It goes on: “{_clip(body, 240)}”" if body else ""
    return f"The document's title or heading is “{_clip(title.text, 160)}”, so that is its main topic.{opening}"


def _fallback(kind: str, quoted: str, lines: list[Line]) -> str:
    text = " ".join(line.text for line in lines)
    if kind == "money":
        amounts = [(m.group().strip(), line.text) for line in lines for m in MONEY.finditer(line.text)]
        money = [(a, t) for a, t in amounts if re.search(r"[$€£¥]|USD|EUR|GBP|\.\d\d\b", a)]
        if money:
            best = max(money, key=lambda at: _number(at[0]))
            return f"No line is labelled as the question asks; the largest amount in the document is {best[0]} (line “{_clip(best[1], 160)}”)."
    if kind == "date":
        for line in lines:
            match = DATE.search(line.text)
            if match:
                return f"{match.group()} (the first date in the document, on the line “{_clip(line.text, 160)}”)"
    if kind == "who":
        match = re.search(
            r"\b(?:by|author|written by|prepared by|from)\s*[:\-]?\s*([A-Z][\w.'-]*(?:\s+[A-Z][\w.'-]*){0,3})", text
        )
        if match:
            return f"{match.group(1)} (from “{_clip(match.group(), 120)}”)"
    if kind == "where":
        for line in lines:
            if re.search(r"\b(address|location|venue|place|city)\b", line.text, re.IGNORECASE):
                place = _after_label(line.text, {"address", "location", "venue", "place", "city"})
                if place:
                    return f"{place} (from the document's line “{_clip(line.text, 160)}”)"
    if kind == "max":
        numbers = [(m.group(), line.text) for line in lines for m in NUMBER.finditer(DATE.sub(" ", line.text))]
        if numbers:
            best = max(numbers, key=lambda nt: _number(nt[0]))
            return f"The highest number in the document is {best[0]}, on the line “{_clip(best[1], 160)}”."
    return f"I could not find the answer to “{quoted}” in the document's text. The document reads: “{_clip(text)}”"


def _number(text: str) -> float:
    digits = re.sub(r"[^\d.,-]", "", text)
    if re.search(r",\d{1,2}$", digits) and "." not in digits:
        digits = digits.replace(",", ".")  # 12,50 as in Europe
    try:
        return float(digits.replace(",", ""))
    except ValueError:
        return float("-inf")


class TesseractDocQA(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        question = inputs["question"].as_text().strip()
        if not question:
            raise ExpertError("there is no question to answer: give the question about the document as text")
        lines = read_lines(inputs["image"].path)
        return {"text": Resource.text(answer_question(question, lines))}

"""The builtin text experts for real: VADER sentiment, YAKE keywords, TF-IDF similarity and summaries, the URL
extractor and the pattern tagger."""

from __future__ import annotations

from typing import Any

import pytest

from baton.catalog import load_catalog
from baton.experts import ExpertError
from baton.experts.builtin.text import split_sentences
from baton.experts.builtin.textscan import find_entities, find_urls
from baton.media import Resource

ARTICLE = (
    "Photosynthesis is the process by which green plants turn light into chemical energy. "
    "It takes place mainly in the leaves, inside small structures called chloroplasts. "
    "Chloroplasts contain chlorophyll, the pigment that absorbs light and gives plants their green colour. "
    "During photosynthesis, plants take in carbon dioxide from the air and water from the soil. "
    "Using light energy, they convert the carbon dioxide and water into glucose and release oxygen. "
    "The glucose feeds the plant and is stored as starch. "
    "Oxygen released by plants during photosynthesis is essential for most life on Earth. "
    "My neighbour bought a new bicycle last week. "
    "Scientists study photosynthesis to improve crop yields and to turn sunlight into fuel. "
    "Dr. Smith of the U.S. Department of Energy leads one such project on artificial photosynthesis."
)


def run(model_id: str, ctx: Any, options: dict[str, str] | None = None, **texts: str) -> dict[str, Resource]:
    card = load_catalog().get(model_id)
    assert card.missing() == [], card.missing()
    inputs = {port: Resource.text(value) for port, value in texts.items()}
    return card.build().run(inputs, options or {}, ctx)  # type: ignore[no-any-return]


# sentiment


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I absolutely love this phone, the camera is wonderful and the battery lasts for days!", "positive"),
        ("What a fantastic concert, we had a great time.", "positive"),
        ("This is the worst service I have ever had. Rude staff and cold, awful food.", "negative"),
        ("The delivery was late and the package arrived broken. Terrible.", "negative"),
        ("The train leaves at nine from platform four.", "neutral"),
    ],
)
def test_sentiment_labels_clear_cases(text: str, label: str, expert_ctx: Any) -> None:
    result = run("builtin/vader-sentiment", expert_ctx, text=text)
    assert set(result) == {"text", "json"}
    scores = result["json"].value
    assert scores["label"] == label
    compound = scores["compound"]
    assert result["text"].value == f"{label} (compound {compound:.2f})"
    if label == "positive":
        assert compound > 0.5
    elif label == "negative":
        assert compound < -0.5
    else:
        assert abs(compound) < 0.05
    assert scores["positive"] + scores["neutral"] + scores["negative"] == pytest.approx(1, abs=0.01)


def test_sentiment_of_empty_text_is_an_error(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="no text to classify"):
        run("builtin/vader-sentiment", expert_ctx, text="  \n ")


# keywords


def test_keywords_name_the_topic(expert_ctx: Any) -> None:
    text = (
        "Machine learning is a subset of artificial intelligence that lets computers learn from data. "
        "Machine learning models find patterns in training data and make predictions. Deep learning, a kind of "
        "machine learning, uses neural networks with many layers; neural networks need a lot of training data."
    )
    keywords = run("builtin/yake", expert_ctx, text=text)["text"].value.split(", ")
    lowered = [k.lower() for k in keywords]
    assert "machine learning" in lowered[:3]
    assert "neural networks" in lowered
    assert any("data" in k for k in lowered)
    assert len(keywords) == 8
    assert len(set(lowered)) == len(lowered)


def test_keywords_skip_words_already_in_a_phrase_and_honour_count(expert_ctx: Any) -> None:
    text = (
        "The Battle of Waterloo was a pivotal event in European history. Napoleon Bonaparte was defeated by "
        "the Duke of Wellington, marking the end of Napoleon's reign."
    )
    keywords = run("builtin/yake", expert_ctx, {"count": "top 5"}, text=text)["text"].value.split(", ")
    assert len(keywords) == 5
    assert "Napoleon Bonaparte" in keywords
    assert "Napoleon" not in keywords and "Bonaparte" not in keywords  # covered by the phrase


def test_keywords_of_a_short_list(expert_ctx: Any) -> None:
    result = run("builtin/yake", expert_ctx, text="Eiffel Tower, Louvre Museum, Seine River, French cuisine")
    assert set(result["text"].value.split(", ")) >= {"Eiffel Tower", "Louvre Museum", "Seine River", "French cuisine"}


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("", {}, "no text to extract keywords from"),
        ("the and of it is", {}, "found no keywords"),
        ("Some real words about gardening", {"count": "many"}, "count must be a whole number, not 'many'"),
        ("Some real words about gardening", {"count": "0"}, "count 0 is out of range; use 1 to 100"),
    ],
)
def test_keyword_errors(text: str, options: dict[str, str], message: str, expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match=message):
        run("builtin/yake", expert_ctx, options, text=text)


# similarity


def similarity(ctx: Any, first: str, second: str) -> float:
    result = run("builtin/tfidf-similarity", ctx, text=first, text2=second)
    score = result["json"].value["score"]
    assert result["text"].value == f"similarity {score:.2f}"
    assert 0 <= score <= 1
    return float(score)


def test_identical_texts_score_one(expert_ctx: Any) -> None:
    assert similarity(expert_ctx, "The cat sat on the mat.", "The cat sat on the mat.") == 1.0
    assert similarity(expert_ctx, "It is what it is", "it is  WHAT it is") == 1.0  # only stop words, any case


def test_paraphrase_scores_higher_than_unrelated_text(expert_ctx: Any) -> None:
    base = "The quick brown fox jumps over the lazy dog"
    paraphrase = similarity(expert_ctx, base, "The speedy brown fox leaps over the idle dog")
    unrelated = similarity(expert_ctx, base, "Stock markets fell sharply on Tuesday after the bank report")
    assert paraphrase > 0.3
    assert unrelated < 0.15
    assert paraphrase > 2 * unrelated
    reordered = similarity(expert_ctx, "The book is on the table.", "There is a book on the table.")
    assert reordered > paraphrase


def test_similarity_needs_both_texts(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="no text to compare"):
        run("builtin/tfidf-similarity", expert_ctx, text="Something here", text2=" ")


# summaries


def test_sentence_splitting_keeps_abbreviations_and_initials() -> None:
    text = "Dr. Smith met J. K. Rowling in the U.S. in 2001. It went well! Did it? Yes.\n\n- first item\n- second item"
    assert split_sentences(text) == [
        "Dr. Smith met J. K. Rowling in the U.S. in 2001.",
        "It went well!",
        "Did it?",
        "Yes.",
        "- first item",
        "- second item",
    ]


def test_summary_of_a_long_text_is_shorter_and_made_of_its_sentences(expert_ctx: Any) -> None:
    summary = run("builtin/tfidf-summarizer", expert_ctx, text=ARTICLE)["text"].value
    sentences = split_sentences(summary)
    originals = split_sentences(ARTICLE)
    assert len(originals) == 10
    assert len(sentences) == 4  # a third, rounded up
    assert all(s in originals for s in sentences)
    positions = [originals.index(s) for s in sentences]
    assert positions == sorted(positions)  # in the original order
    assert "photosynthesis" in summary.lower()
    assert "bicycle" not in summary  # the off-topic sentence is dropped


def test_summary_sentence_count_option(expert_ctx: Any) -> None:
    for given, count in [("1", 1), ("2 sentences", 2), ("9", 9), ("50", 10)]:
        summary = run("builtin/tfidf-summarizer", expert_ctx, {"sentences": given}, text=ARTICLE)["text"].value
        assert len(split_sentences(summary)) == count, given
    one = run("builtin/tfidf-summarizer", expert_ctx, {"sentences": "1"}, text=ARTICLE)["text"].value
    assert "photosynthesis" in one.lower()


def test_short_text_comes_back_trimmed(expert_ctx: Any) -> None:
    text = "  The meeting   moved to Friday.\nBring the slides.  Lunch is provided. "
    summary = run("builtin/tfidf-summarizer", expert_ctx, text=text)["text"].value
    assert summary == "The meeting moved to Friday. Bring the slides. Lunch is provided."


@pytest.mark.parametrize(
    ("options", "message"),
    [({"sentences": "few"}, "sentences must be a whole number"), ({"sentences": "0"}, "out of range")],
)
def test_summary_bad_option_is_an_error(options: dict[str, str], message: str, expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match=message):
        run("builtin/tfidf-summarizer", expert_ctx, options, text=ARTICLE)


def test_summary_of_empty_text_is_an_error(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="no text to summarize"):
        run("builtin/tfidf-summarizer", expert_ctx, text="")


# URLs


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("I found an article at 'http://example.com/article' and want it.", ["http://example.com/article"]),
        ("There's this amazing learning platform: www.learnwithexample.com", ["https://www.learnwithexample.com"]),
        ("see example.org/docs?page=2#top, then (https://en.wikipedia.org/wiki/Fox_(disambiguation)).",
         ["https://example.org/docs?page=2#top", "https://en.wikipedia.org/wiki/Fox_(disambiguation)"]),
        ("Visit https://a.example.net/x. Or https://a.example.net/x again!", ["https://a.example.net/x"]),
        ("mail bob@example.com, open example.jpg or ftp://files.example.com/x", []),
        ("http://[2001:db8::1]:8080/path and HTTPS://EXAMPLE.COM", ["http://[2001:db8::1]:8080/path", "HTTPS://EXAMPLE.COM"]),
    ],
)  # fmt: skip
def test_find_urls(text: str, urls: list[str]) -> None:
    assert find_urls(text) == urls


def test_url_extractor_gives_the_first_url(expert_ctx: Any) -> None:
    text = "Hey, look at this amazing site: www.example.com/deals and also https://other.example.org"
    result = run("builtin/url-regex", expert_ctx, text=text)
    assert set(result) == {"url"}
    assert result["url"].kind == "url"
    assert result["url"].value == "https://www.example.com/deals"


def test_url_extractor_without_a_url_is_an_error(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="no URL in the text"):
        run("builtin/url-regex", expert_ctx, text="Nothing to see here, just example.mp3 and a@b.com")


# token classification


def test_tagger_finds_each_kind_with_offsets(expert_ctx: Any) -> None:
    text = (
        "On Monday, 12 March 2024 at 3:30 pm, Alice Johnson paid $1,250.50 for 3 tickets with a 15% discount; "
        "write to alice@example.org or see https://example.com/deal before 2024-04-01."
    )
    result = run("builtin/regex-tagger", expert_ctx, text=text)
    entities = result["json"].value
    for entity in entities:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    found = [(e["type"], e["text"]) for e in entities]
    assert found == [
        ("DATE", "Monday, 12 March 2024"),
        ("TIME", "3:30 pm"),
        ("NAME", "Alice Johnson"),
        ("MONEY", "$1,250.50"),
        ("NUMBER", "3"),
        ("PERCENT", "15%"),
        ("EMAIL", "alice@example.org"),
        ("URL", "https://example.com/deal"),
        ("DATE", "2024-04-01"),
    ]
    assert result["text"].value.splitlines() == [f"{kind}: {value}" for kind, value in found]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yesterday, I spotted a breathtaking red Ferrari near Times Square.",
         [("DATE", "Yesterday"), ("NAME", "Ferrari"), ("NAME", "Times Square")]),
        ("The Battle of Waterloo was fought on June 18, 1815 near Brussels.",
         [("NAME", "Battle of Waterloo"), ("DATE", "June 18, 1815"), ("NAME", "Brussels")]),
        ("It cost 20 euros, or EUR 2.5 million, at 10am next week.",
         [("MONEY", "20 euros"), ("MONEY", "EUR 2.5 million"), ("TIME", "10am"), ("DATE", "next week")]),
        ("Sales grew 7.5 percent since 1999 to 1,200 units.",
         [("PERCENT", "7.5 percent"), ("DATE", "1999"), ("NUMBER", "1,200")]),
    ],
)  # fmt: skip
def test_tagger_cases(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(e.type, e.text) for e in find_entities(text)] == expected


def test_tagger_with_nothing_to_tag_says_so(expert_ctx: Any) -> None:
    result = run("builtin/regex-tagger", expert_ctx, text="nothing much happens here, really.")
    assert result["json"].value == []
    assert result["text"].value == "no dates, times, numbers, e-mails, URLs, money amounts, percentages or names found"
    empty = run("builtin/regex-tagger", expert_ctx, text=" \n")  # e.g. OCR found no text in a photo
    assert empty["json"].value == []
    assert empty["text"].value.endswith("found: the text is empty")

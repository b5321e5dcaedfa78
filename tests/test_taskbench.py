"""TaskBench's plan metrics on hand-made gold/prediction pairs whose scores are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from baton.taskbench import (
    ToolList,
    _similarity,
    content_kind,
    evaluate,
    load_tools,
    read_predictions,
)

TOOLS = load_tools("huggingface")
I2T, TTS, TR, OD = "Image-to-Text", "Text-to-Speech", "Translation", "Object Detection"


def node(task: str, *arguments: Any) -> dict[str, Any]:
    return {"task": task, "arguments": list(arguments)}


def gold(record_id: str, kind: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"id": record_id, "type": kind, "instruction": "...", "task_nodes": list(nodes)}


def pred(record_id: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"id": record_id, "result": {"task_steps": [], "task_nodes": list(nodes), "task_links": []}}


READ_ALOUD = gold("1", "chain", node(I2T, "example.jpg"), node(TTS, "<node-0>"))


def scores(golds: list[dict[str, Any]], preds: list[dict[str, Any]], tools: ToolList = TOOLS) -> dict[str, Any]:
    return {group: s.to_json() for group, s in evaluate(golds, {p["id"]: p for p in preds}, tools).items()}


def test_a_perfect_prediction_scores_100_and_no_distance() -> None:
    found = scores([READ_ALOUD], [pred("1", node(I2T, "example.jpg"), node(TTS, "<node-0>"))])["all"]
    assert found == {"records": 1, "missing": 0, "n_f1": 100, "e_f1": 100, "t_f1": 100, "v_f1": 100, "ned": 0}


def test_a_partly_right_prediction() -> None:
    """Gold I2T -> TTS; predicted I2T -> Translation.

    nodes {I2T, TTS} vs {I2T, TR}: tp 1, fp 1, fn 1 -> 50. edges {I2T-TTS} vs {I2T-TR} -> 0.
    argument names {I2T-image, TTS-text} vs {I2T-image, TR-text} -> 50; values likewise -> 50.
    tool sequences [I2T, TTS] vs [I2T, TR]: one in common of 4 -> similarity 0.5, NED 0.5.
    """
    found = scores([READ_ALOUD], [pred("1", node(I2T, "example.jpg"), node(TR, "<node-0>"))])["all"]
    assert found == {"records": 1, "missing": 0, "n_f1": 50, "e_f1": 0, "t_f1": 50, "v_f1": 50, "ned": 0.5}


def test_scores_are_pooled_over_records() -> None:
    """Record 1 perfect (2 tools, 1 edge); record 2 gold OD, predicted OD and I2T.

    nodes: tp 3, fp 1, fn 0 -> P 0.75, R 1 -> 85.71. edges: only record 1 has one, found -> 100.
    NED: record 2's sequences [OD] and [OD, I2T] share 1 of 3 -> similarity 2/3; 1 - (1 + 2/3) / 2 = 1/6.
    """
    second = gold("2", "single", node(OD, "example.jpg"))
    found = scores(
        [READ_ALOUD, second],
        [
            pred("1", node(I2T, "example.jpg"), node(TTS, "<node-0>")),
            pred("2", node(OD, "example.jpg"), node(I2T, "example.jpg")),
        ],
    )
    assert found["all"]["n_f1"] == 85.71
    assert found["all"]["e_f1"] == 100
    assert found["all"]["ned"] == pytest.approx(1 / 6, abs=1e-4)
    assert found["chain"]["n_f1"] == 100 and found["single"]["n_f1"] == 66.67
    assert found["single"]["e_f1"] is None  # no edge in gold or prediction: undefined, not 0


def test_a_missing_prediction_counts_as_an_empty_plan() -> None:
    """TaskBench's script would skip record 2 and report 100; here it costs its two gold tools."""
    second = gold("2", "chain", node(OD, "example.jpg"), node(TTS, "<node-0>"))
    found = scores([READ_ALOUD, second], [pred("1", node(I2T, "example.jpg"), node(TTS, "<node-0>"))])["all"]
    assert found["missing"] == 1
    assert found["n_f1"] == 66.67  # tp 2, fn 2
    assert found["e_f1"] == 66.67  # tp 1, fn 1
    assert found["ned"] == 0.5  # (0 + 1) / 2


@pytest.mark.parametrize(
    "broken",
    [
        {"id": "1", "result": "not json at all"},
        {"id": "1", "result": {"task_nodes": "nope"}},
        {"id": "1"},
        {"id": "1", "result": '{"task_nodes": ['},
    ],
)
def test_an_unreadable_prediction_counts_as_an_empty_plan(broken: dict[str, Any]) -> None:
    found = scores([READ_ALOUD], [broken])["all"]
    assert found["missing"] == 1 and found["n_f1"] == 0 and found["ned"] == 1


def test_a_prediction_given_as_json_text_is_read() -> None:
    text = json.dumps({"task_nodes": [node(I2T, "example.jpg"), node(TTS, "<node-0>")]})
    assert scores([READ_ALOUD], [{"id": "1", "result": text}])["all"]["n_f1"] == 100


def test_tools_outside_the_list_do_not_count_for_node_f1_but_underscores_read_as_spaces() -> None:
    gold_asr = gold("1", "single", node("Automatic Speech Recognition", "example.wav"))
    found = scores([gold_asr], [pred("1", node("Automatic_Speech_Recognition", "example.wav"), node("Teleporter"))])
    assert found["all"]["n_f1"] == 100  # "Teleporter" is not a tool of the list
    assert found["all"]["ned"] == pytest.approx(1 - 2 / 3, abs=1e-4)  # but it is in the sequence (as 0)


def test_references_make_edges_and_typed_argument_names() -> None:
    """A self-reference is ignored; a reference past the last node is read as a literal."""
    record = gold(
        "1",
        "dag",
        node(I2T, "example.jpg"),
        node(TR, "<node-0>", "French"),
        node(TTS, "<node-2>"),  # itself: ignored
        node(OD, "<node-9>"),  # no node 9: a literal
    )
    found = scores([record], [pred("1", node(I2T, "example.jpg"), node(TR, "<node-0>", "French"))])["all"]
    # gold names: I2T-image, TR-text (ref), TR-text (literal, same label), OD-text; predicted: I2T-image, TR-text
    assert found["t_f1"] == 80.0  # tp 2, fn 1
    assert found["e_f1"] == 100  # the only gold edge is I2T -> TR


def test_the_kind_of_a_referenced_argument_is_its_source_tools_output() -> None:
    record = gold("1", "chain", node(I2T, "example.jpg"), node("Image Editing", "<node-0>", "make it red"))
    wrong_kind = pred("1", node(I2T, "example.jpg"), node("Image Editing", "example.jpg", "make it red"))
    # Image-to-Text outputs text, so the reference is Image Editing-text; the file is Image Editing-image
    assert scores([record], [wrong_kind])["all"]["t_f1"] == 80.0  # tp 2, fp 1


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("example.jpg", "image"),
        ("'photo.PNG'", "text"),  # extensions are matched as written, as TaskBench does
        ("https://example.com/song.mp3", "audio"),
        ("clip.mp4", "video"),
        ("a sunny beach", "text"),
    ],
)
def test_content_kind_follows_taskbench(value: str, kind: str) -> None:
    assert content_kind(value) == kind


@pytest.mark.parametrize(
    ("a", "b", "similarity"),
    [([], [], 1.0), ([1, 2, 3], [1, 3], 0.8), ([1, 2], [3, 4], 0.0), ([1, 2, 3], [3, 2, 1], 1 / 3), ([5], [], 0.0)],
)
def test_sequence_similarity_is_levenshtein_ratio(a: list[int], b: list[int], similarity: float) -> None:
    assert _similarity(a, b) == pytest.approx(similarity)


def test_gold_records_without_nodes_are_skipped_and_types_are_grouped() -> None:
    found = scores([READ_ALOUD, {"id": "x", "type": "chain"}, "garbage"], [])  # type: ignore[list-item]
    assert list(found) == ["all", "chain"] and found["all"]["records"] == 1


def test_read_predictions_skips_lines_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    path.write_text('{"id": 1, "result": {}}\n\nnot json\n[1]\n{"id": "b"}\n', encoding="utf-8")
    assert set(read_predictions(path)) == {"1", "b"}


def test_shipped_tool_lists_match_taskbench() -> None:
    assert len(load_tools("huggingface").tools) == 23 and len(load_tools("multimedia").tools) == 40
    assert load_tools("multimedia").by_id["Image Search"].outputs == ("image",)  # 'Image' in the source


def test_a_tool_list_file_can_be_given(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"nodes": [{"id": "A", "input-type": ["text"], "output-type": ["Image"]}]}))
    tools = load_tools(path)
    assert tools.ids == ["A"] and tools.by_id["A"].outputs == ("image",)
    with pytest.raises(ValueError, match="cannot read the tool list"):
        load_tools(tmp_path / "missing.json")

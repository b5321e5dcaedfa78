"""``baton plan``, ``baton plan --batch``, ``baton eval taskbench`` and ``baton train planner``, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from baton.taskbench import data_dir, load_tools
from conftest import Baton, Done

README_REQUEST = "read the text in this image aloud"
GOLD = data_dir() / "huggingface.dev.jsonl"


def one_line_error(done: Done, *fragments: str) -> None:
    assert done.code == 2, done
    assert "Traceback" not in done.stderr + done.stdout, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done
    for fragment in fragments:
        assert fragment in lines[0], done


def test_plan_prints_the_plan_without_running_it(baton: Baton, sign_image: Path, baton_home: Path) -> None:
    done = baton("plan", README_REQUEST, "-i", sign_image)
    assert done.code == 0, done
    assert done.stdout.splitlines() == [
        '[0] image-to-text  image="sign.png"',
        '[1] text-to-speech  text="<GENERATED>-0"  (after 0)',
    ]
    assert done.stderr.startswith("planner: local (confidence 0.")
    assert not (baton_home / "baton.db").exists()  # nothing ran, nothing was stored


def test_plan_as_json(baton: Baton, sign_image: Path) -> None:
    shown = baton("plan", README_REQUEST, "-i", sign_image, "--json", "--planner", "local").json()
    assert shown["planner"] == "local" and 0 <= shown["confidence"] <= 1
    assert [(t["task"], t["args"], t["dep"]) for t in shown["tasks"]] == [
        ("image-to-text", {"image": "sign.png"}, []),
        ("text-to-speech", {"text": "<GENERATED>-0"}, [0]),
    ]


def test_plan_says_when_no_task_is_needed(baton: Baton) -> None:
    done = baton("plan", "hello")
    assert done.code == 0 and "no task" in done.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("plan", ""), "the request is empty"),
        (("plan", README_REQUEST), "needs an image, but none was given"),
        (("plan", "say hi", "--planner", "llm"), "needs an LLM"),
        (("plan", "say hi", "--planner", "robot"), "--planner must be one of"),
        (("plan", "--batch", "in.jsonl", "--format", "taskbench"), "needs --tools"),
        (("plan", "--batch", "missing.jsonl", "--tools", "huggingface"), "cannot read 'missing.jsonl'"),
        (("plan", "--batch", "-", "--tools", "nowhere.json"), "cannot read the tool list"),
    ],
)
def test_plan_errors_are_one_line(baton: Baton, args: tuple[str, ...], fragment: str) -> None:
    one_line_error(baton(*args), fragment)


BATCH_LINES = [
    json.dumps({"id": 1, "user_request": "Please summarize this: 'The meeting moved to Tuesday at noon.'"}),
    "",
    "this is not json",
    "[1, 2, 3]",
    json.dumps({"id": "b", "instruction": "I have a photo example.jpg; find the objects in it and describe them."}),
    json.dumps({"id": 3}),
    json.dumps({"id": 4, "user_request": "   "}),
    json.dumps({"id": 5, "user_request": "Generate an image of a red fox, then make a video from the same text."}),
]


def batch(baton: Baton, tmp_path: Path, *options: str) -> list[dict[str, Any]]:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(BATCH_LINES) + "\n", encoding="utf-8")
    done = baton("plan", "--batch", source, *options)
    assert done.code == 0, done
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_batch_writes_one_taskbench_line_per_input_line(baton: Baton, tmp_path: Path) -> None:
    lines = batch(baton, tmp_path, "--format", "taskbench", "--tools", "huggingface")
    assert len(lines) == len(BATCH_LINES)
    assert [line["id"] for line in lines] == [1, None, None, None, "b", 3, 4, 5]
    tool_ids = set(load_tools("huggingface").ids)
    for line in lines:
        result = line["result"]
        assert set(result) == {"task_steps", "task_nodes", "task_links"}
        assert len(result["task_steps"]) == len(result["task_nodes"])
        for index, node in enumerate(result["task_nodes"]):
            assert node["task"] in tool_ids
            for argument in node["arguments"]:
                if argument.startswith("<node-"):
                    assert int(argument[6:-1]) < index  # references point back: a topological order
        for link in result["task_links"]:
            assert {link["source"], link["target"]} <= tool_ids
    planned = [line for line in lines if "error" not in line]
    assert [line["id"] for line in planned] == [1, "b", 5]
    assert all(line["result"]["task_nodes"] and 0 <= line["confidence"] <= 1 for line in planned)
    assert {line["error"] for line in lines if "error" in line} == {
        "blank line",
        "not JSON: Expecting value",
        "not a JSON object",
        "no user_request or instruction",
    }
    summary = lines[0]["result"]["task_nodes"]
    assert summary == [{"task": "Summarization", "arguments": ["The meeting moved to Tuesday at noon."]}]


def test_batch_with_another_domain_and_a_tool_list_file(baton: Baton, tmp_path: Path) -> None:
    multimedia = batch(baton, tmp_path, "--format", "taskbench", "--tools", "multimedia")
    assert multimedia[0]["result"]["task_nodes"][0]["task"] == "Text Summarizer"
    # a tool list of its own: planned by the general model, answered in that list's ids
    tools = tmp_path / "tools.json"
    nodes = [
        {"id": "summarization", "input-type": ["text"], "output-type": ["text"]},
        {"id": "Generate Image From User Input Text", "input-type": ["text"], "output-type": ["image"]},
    ]
    tools.write_text(json.dumps({"nodes": nodes}))
    own = batch(baton, tmp_path, "--format", "taskbench", "--tools", str(tools))
    assert len(own) == len(BATCH_LINES)
    assert {node["task"] for line in own for node in line["result"]["task_nodes"]} <= {n["id"] for n in nodes}
    assert own[0]["result"]["task_nodes"][0]["task"] == "summarization"


def test_batch_in_baton_format_gives_valid_plans(baton: Baton, tmp_path: Path) -> None:
    from baton.plan import parse_plan, validate

    lines = batch(baton, tmp_path, "--format", "baton")
    assert len(lines) == len(BATCH_LINES)
    photo = lines[4]
    assert photo["id"] == "b" and photo["plan"]["tasks"][0]["args"] == {"image": "example.jpg"}
    for line in lines:
        validate(parse_plan(line["plan"]), {"example.jpg": "image"})


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def test_eval_taskbench_scores_predictions(baton: Baton, tmp_path: Path) -> None:
    gold = write_jsonl(
        tmp_path / "gold.jsonl",
        [
            {
                "id": "1",
                "type": "chain",
                "task_nodes": [
                    {"task": "Image-to-Text", "arguments": ["example.jpg"]},
                    {"task": "Text-to-Speech", "arguments": ["<node-0>"]},
                ],
            },
            {"id": "2", "type": "single", "task_nodes": [{"task": "Translation", "arguments": ["hello"]}]},
        ],
    )
    pred = tmp_path / "pred.jsonl"
    pred.write_text(
        json.dumps(
            {
                "id": "1",
                "result": {
                    "task_nodes": [
                        {"task": "Image-to-Text", "arguments": ["example.jpg"]},
                        {"task": "Text-to-Speech", "arguments": ["<node-0>"]},
                    ]
                },
            }
        )
        + "\nnot json\n",
        encoding="utf-8",
    )
    shown = baton("eval", "taskbench", "--gold", gold, "--pred", pred, "--tools", "huggingface", "--json").json()
    assert shown["all"] == {
        "records": 2,
        "missing": 1,
        "n_f1": 80.0,  # tp 2, fn 1
        "e_f1": 100.0,
        "t_f1": 80.0,
        "v_f1": 80.0,
        "ned": 0.5,
    }
    assert shown["single"]["n_f1"] == 0 and shown["chain"]["n_f1"] == 100
    table = baton("eval", "taskbench", "--gold", gold, "--pred", pred, "--tools", "huggingface")
    assert table.code == 0 and "node-F1" in table.stdout and "80.00" in table.stdout


def test_eval_errors_are_one_line(baton: Baton, tmp_path: Path) -> None:
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    one_line_error(
        baton("eval", "taskbench", "--gold", "nope.jsonl", "--pred", empty, "--tools", "huggingface"), "cannot read"
    )
    one_line_error(
        baton("eval", "taskbench", "--gold", empty, "--pred", empty, "--tools", "huggingface"), "no TaskBench"
    )


@pytest.mark.slow
def test_batch_then_eval_on_the_dev_split_end_to_end(baton: Baton, tmp_path: Path) -> None:
    """The shipped model on its own training data: a sanity check of the whole path, not a benchmark."""
    if not GOLD.exists():
        pytest.skip(f"TaskBench data not found at {GOLD}")
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(GOLD.read_text(encoding="utf-8").splitlines(keepends=True)[:100]), encoding="utf-8")
    done = baton("plan", "--batch", gold, "--format", "taskbench", "--tools", "huggingface")
    assert done.code == 0 and len(done.stdout.splitlines()) == 100
    pred = tmp_path / "pred.jsonl"
    pred.write_text(done.stdout, encoding="utf-8")
    scores = baton("eval", "taskbench", "--gold", gold, "--pred", pred, "--tools", "huggingface", "--json").json()
    assert scores["all"]["missing"] == 0 and scores["all"]["n_f1"] > 75

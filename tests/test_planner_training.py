"""Training the local planner's model: reproducible artefacts, no pickles, shipped models that load."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from baton.planners.model import MODEL_DOMAINS, PlannerModel, load_model, model_path, read_artifact
from baton.taskbench import data_dir, load_tools
from conftest import Baton

pytest.importorskip("sklearn", reason="training needs the 'text' extra")

from baton.planners.training import TrainConfig, train_domain, training_data

DATA = data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "huggingface.dev.jsonl").exists(), reason=f"TaskBench data not found at {DATA}"
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@needs_data
def test_the_same_seed_gives_the_same_artefact(tmp_path: Path) -> None:
    config = TrainConfig(seed=3)
    first = train_domain("huggingface", out=tmp_path / "a.zip", config=config, limit=60)
    second = train_domain("huggingface", out=tmp_path / "b.zip", config=config, limit=60)
    assert first.records == second.records == 60
    assert first.sha256 == second.sha256 == sha256(tmp_path / "a.zip") == sha256(tmp_path / "b.zip")
    other = train_domain("huggingface", out=tmp_path / "c.zip", config=TrainConfig(seed=4), limit=60)
    assert other.sha256 != first.sha256  # the seed is used (the stacked model's folds, the solvers)
    model = PlannerModel.from_bytes((tmp_path / "a.zip").read_bytes())
    prediction = model.predict("Please translate 'good morning' into German.")
    assert prediction.nodes and all(node.tool in load_tools("huggingface").by_id for node in prediction.nodes)


@pytest.mark.slow
@needs_data
def test_the_artefact_holds_only_json_and_plain_arrays(tmp_path: Path) -> None:
    train_domain("multimedia", out=tmp_path / "m.zip", limit=60)
    with zipfile.ZipFile(tmp_path / "m.zip") as archive:
        names = archive.namelist()
        assert names[0] == "header.json" and all(n.endswith(".npy") for n in names[1:])
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    header, arrays = read_artifact((tmp_path / "m.zip").read_bytes())  # allow_pickle=False throughout
    assert header["domain"] == "multimedia" and header["training"]["records"] == 60
    assert all(array.dtype != np.dtype("O") for array in arrays.values())
    assert arrays["doc_w"].dtype == np.int8 and arrays["seg_w"].dtype == np.int8


def test_malformed_records_are_skipped() -> None:
    tools = load_tools("huggingface")
    records = [
        {"instruction": "Translate this.", "task_nodes": [{"task": "Translation", "arguments": ["this"]}]},
        {"instruction": "No tools known.", "task_nodes": [{"task": "Teleporter", "arguments": []}]},
        {"instruction": 5, "task_nodes": []},
        {"task_nodes": [{"task": "Translation"}]},
        {"instruction": "Bad nodes.", "task_nodes": "Translation"},
        "garbage",
        {
            "instruction": "Caption example.jpg, then speak it.",
            "task_nodes": [
                {"task": "Image-to-Text", "arguments": ["example.jpg"]},
                {"task": "Text-to-Speech", "arguments": ["<node-0>"]},
                "not a node",
            ],
            "task_links": [{"source": "Image-to-Text", "target": "Text-to-Speech"}, "oops"],
            "task_steps": ["Step 1: caption it", "Step 2: speak it"],  # 2 steps for 3 nodes: not aligned
        },
    ]
    examples = training_data(records, tools)
    assert len(examples) == 2
    assert examples[1].tools == [tools.ids.index("Image-to-Text"), tools.ids.index("Text-to-Speech")]
    assert examples[1].links == [(tools.ids.index("Image-to-Text"), tools.ids.index("Text-to-Speech"))]
    assert examples[1].steps == [] and examples[1].literals == ["example.jpg"]
    assert "zzimgfile" in examples[1].text


def test_shipped_models_load_and_stay_small() -> None:
    sizes = {domain: model_path(domain).stat().st_size for domain in MODEL_DOMAINS}
    assert sum(sizes.values()) < 5_000_000, sizes
    for domain in MODEL_DOMAINS:
        model = load_model(domain)
        assert model.domain == domain
        assert model.header["training"]["config"]["seed"] == 0
    assert set(load_model("huggingface").ids) == set(load_tools("huggingface").ids)
    assert "text-to-speech" in load_model("baton").ids  # the baton model speaks baton's task names


@pytest.mark.slow
@needs_data
def test_train_command_writes_a_model_and_reports_its_hash(baton: Baton, tmp_path: Path) -> None:
    out = tmp_path / "model.zip"
    done = baton("train", "planner", "--domain", "multimedia", "--limit", "50", "--out", out, "--seed", "1")
    assert done.code == 0, done
    assert f"sha256 {sha256(out)[:16]}" in done.stderr and "50 records" in done.stderr
    header, _ = read_artifact(out.read_bytes())
    assert header["training"]["config"]["seed"] == 1


def test_train_command_errors_are_one_line(baton: Baton, tmp_path: Path) -> None:
    done = baton("train", "planner", "--domain", "multimedia", "--data", tmp_path, "--out", tmp_path / "x.zip")
    last = done.stderr.strip().splitlines()
    assert done.code == 2 and last[0] == "multimedia: training (about a minute on two cores) ...", done
    assert len(last) == 2 and last[1].startswith("error: cannot read TaskBench data"), done
    done = baton("train", "planner", "--domain", "robots")
    assert done.code == 2 and "--domain must be one of" in done.stderr, done
    done = baton("train", "planner", "--out", tmp_path / "x.zip")
    assert done.code == 2 and "give one --domain" in done.stderr, done


def test_a_model_of_another_format_is_refused(tmp_path: Path) -> None:
    header, arrays = read_artifact(model_path("huggingface").read_bytes())
    with pytest.raises(ValueError, match="rebuild it with baton train planner"):
        PlannerModel({**header, "format": 99}, arrays)
    assert json.loads(json.dumps(header))["format"] == 1

"""The ``baton`` command end to end, as a user runs it: subprocesses against a private BATON_HOME."""

from __future__ import annotations

import json
import os
import random
import runpy
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLE_IMAGE, REPO, Baton, Done, baton_command, baton_env, make_runner, wav_info

EXAMPLE_TEXT: str = runpy.run_path(str(REPO / "examples" / "make_example.py"))["TEXT"]
README_REQUEST = "read the text in this image aloud"
TASK_KEYS = {"id", "task", "model", "status", "outputs", "error", "seconds"}


def write_plan(folder: Path, plan: Any, name: str = "plan.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(plan))
    return path


def ocr_then_speak_plans() -> dict[str, Any]:
    """The same two-task plan (read the sign, speak what it says) in each plan format baton reads."""
    return {
        "hugginggpt": [
            {"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "sign.png"}},
            {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
        ],
        "taskbench": {
            "task_nodes": [
                {"task": "Image-to-Text", "arguments": ["sign.png"]},
                {"task": "Text-to-Speech", "arguments": ["<node-0>"]},
            ],
            "task_links": [{"source": "Image-to-Text", "target": "Text-to-Speech"}],
        },
        "baton": {
            "tasks": [
                {"task": "ocr", "id": 0, "dep": [], "args": {"image": "sign.png"}},
                {"task": "tts", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0", "voice": "en-us"}},
            ]
        },
    }


def assert_one_line_error(done: Done, *fragments: str, code: int = 2) -> None:
    """A user error: the given exit code, one 'error:' line naming the problem, no traceback."""
    assert done.code == code, done
    assert "Traceback" not in done.stderr + done.stdout, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done
    for fragment in fragments:
        assert fragment in lines[0], done


def wav_paths(text: str) -> list[Path]:
    return [Path(word) for word in text.split() if word.endswith(".wav") and os.path.isabs(word)]


# the README example and its JSON form


@pytest.mark.slow
def test_readme_example_reads_the_sign_aloud(baton: Baton) -> None:
    done = baton("run", README_REQUEST, "-i", "examples/sign.png", cwd=REPO)
    assert done.code == 0, done
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("2 of 2 tasks succeeded.")
    assert f'"{EXAMPLE_TEXT}"' in done.stdout
    assert "image-to-text (builtin/tesseract" in done.stdout
    assert "text-to-speech (builtin/espeak-ng" in done.stdout
    paths = wav_paths(done.stdout)
    assert paths, done
    for path in paths:
        assert path.is_file()
        seconds, _, _, _, peak = wav_info(path)
        assert seconds > 0.5 and peak > 1000
    assert "Files:" in done.stdout
    # progress goes to stderr, one line per finished task
    assert "task 0 image-to-text (builtin/tesseract) succeeded" in done.stderr
    assert "task 1 text-to-speech (builtin/espeak-ng) succeeded" in done.stderr


@dataclass
class Populated:
    """A BATON_HOME holding two finished runs: the README example and a spoken phrase (both --json)."""

    home: Path
    baton: Baton
    readme: dict[str, Any]
    say: dict[str, Any]
    runs: list[dict[str, Any]]  # 'baton runs --json' right after both


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    home = tmp_path_factory.mktemp("populated") / "home"
    baton = make_runner(home)
    readme = baton("run", README_REQUEST, "-i", "examples/sign.png", "--json", cwd=REPO)
    assert readme.code == 0, readme
    say = baton("run", "say 'hello there, general'", "--json")
    assert say.code == 0, say
    runs = baton("runs", "--json")
    assert runs.code == 0, runs
    return Populated(home, baton, readme.json(), say.json(), runs.json())


def test_json_output_is_one_object_with_the_whole_result(populated: Populated) -> None:
    result = populated.readme
    assert set(result) >= {"run_id", "answer", "tasks", "artifacts"}
    assert isinstance(result["run_id"], str) and result["run_id"]
    assert EXAMPLE_TEXT in result["answer"]
    assert [task["task"] for task in result["tasks"]] == ["image-to-text", "text-to-speech"]
    for task in result["tasks"]:
        assert set(task) >= TASK_KEYS
        assert task["status"] == "succeeded"
        assert task["error"] is None
        assert isinstance(task["seconds"], float) and task["seconds"] >= 0
    ocr, tts = result["tasks"]
    assert (ocr["id"], ocr["model"]) == (0, "builtin/tesseract")
    assert (tts["id"], tts["model"]) == (1, "builtin/espeak-ng")
    assert ocr["outputs"] == {"text": {"kind": "text", "value": EXAMPLE_TEXT}}
    audio = tts["outputs"]["audio"]
    assert audio["kind"] == "audio"
    assert list(result["artifacts"]) == [audio["artifact"]]
    for name, path in result["artifacts"].items():
        assert name.startswith("audio/") and name.endswith(".wav")
        assert Path(path).is_file()
        assert Path(path).is_relative_to(populated.home)
        assert wav_info(Path(path))[0] > 0.5
        assert path in result["answer"]


def test_json_output_prints_nothing_else(baton: Baton) -> None:
    done = baton("run", "say 'one two three'", "--json")
    assert done.code == 0, done
    assert done.stderr == ""  # no progress lines in JSON mode
    result = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert isinstance(result, dict)
    assert result["tasks"][0]["task"] == "text-to-speech"


# plans


@pytest.mark.parametrize("plan_format", ["hugginggpt", "taskbench", "baton"])
def test_plan_file_names_inputs_by_their_own_file_name(
    plan_format: str, tmp_path: Path, baton: Baton, sign_image: Path
) -> None:
    plan = write_plan(tmp_path, ocr_then_speak_plans()[plan_format])
    done = baton("run", "--plan", plan, "-i", sign_image, "--json", cwd=tmp_path)
    assert done.code == 0, done
    result = done.json()
    assert [(t["task"], t["model"], t["status"]) for t in result["tasks"]] == [
        ("image-to-text", "builtin/tesseract", "succeeded"),
        ("text-to-speech", "builtin/espeak-ng", "succeeded"),
    ]
    assert result["tasks"][0]["outputs"]["text"]["value"] == EXAMPLE_TEXT
    (path,) = result["artifacts"].values()
    assert wav_info(Path(path))[0] > 0.5
    shown = baton("runs", "show", result["run_id"], "--json").json()
    assert shown["planner"] == "given"


def test_plan_file_may_start_with_a_byte_order_mark(tmp_path: Path, baton: Baton, sign_image: Path) -> None:
    plan = tmp_path / "notepad.json"
    plan.write_bytes(b"\xef\xbb\xbf" + json.dumps(ocr_then_speak_plans()["hugginggpt"][:1]).encode())
    done = baton("run", "--plan", plan, "-i", sign_image, "--json", cwd=tmp_path)
    assert done.code == 0, done
    assert done.json()["tasks"][0]["outputs"]["text"]["value"] == EXAMPLE_TEXT


@pytest.mark.parametrize("forced", ["text-to-speech=builtin/espeak-ng", "tts=builtin/espeak-ng"])
def test_model_can_be_forced_for_a_task(forced: str, baton: Baton) -> None:
    done = baton("run", "say 'forced model'", "--model", forced, "--json")
    assert done.code == 0, done
    (task,) = done.json()["tasks"]
    assert (task["task"], task["model"], task["status"]) == ("text-to-speech", "builtin/espeak-ng", "succeeded")


# bad input: one line on stderr, exit 2, nothing stored is lost


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[str | Path], list[str]]]:
    """name -> (arguments of 'baton', fragments its one error line must contain)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad-inputs")
    Image.new("1", (9500, 9500)).save(folder / "poster.png")  # over baton's limit and Pillow's warning limit
    Image.new("1", (20000, 10000)).save(folder / "bomb.png")  # over Pillow's decompression-bomb limit
    text_file = folder / "notes.txt"
    text_file.write_text("just some notes")
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(random.Random(7).randbytes(4096))  # random bytes, named like an image
    empty_image = folder / "empty.png"
    empty_image.write_bytes(b"")
    sign = folder / "sign.png"
    sign.write_bytes(EXAMPLE_IMAGE.read_bytes())
    not_json = folder / "broken.json"
    not_json.write_text('[{"task": "image-to-text", "args": {"image": "sign.png"}')
    binary_plan = folder / "binary.json"
    binary_plan.write_bytes(b"\xff\xfe\x00[\x00{\x00")  # UTF-16, not UTF-8
    unknown_task = write_plan(folder, [{"task": "teleportation", "id": 0, "dep": [-1], "args": {}}], "unknown.json")
    unattached = [{"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "other.png"}}]
    unknown_file = write_plan(folder, unattached, "other.json")
    ocr = ["run", "read the text in this image", "-i", sign]
    return {
        "missing file": (
            ["run", "read the text in this image", "-i", folder / "nowhere.png"],
            ["nowhere.png", "does not exist"],
        ),
        "input is a folder": (["run", "read the text in this image", "-i", folder], ["is not a file"]),
        "unsupported file type": (
            ["run", "read this", "-i", text_file],
            ["notes.txt", "unsupported file type '.txt'", ".png"],
        ),
        "corrupt image": (
            ["run", "read the text in this image", "-i", corrupt],
            ["corrupt.png", "not a readable image"],
        ),
        "empty image file": (["run", "read the text in this image", "-i", empty_image], ["empty.png", "empty"]),
        "image over the pixel limit": (
            ["run", "read the text in this image", "-i", folder / "poster.png"],
            ["'poster.png' is 9500x9500 pixels, over the limit", "resize it first"],
        ),
        "image far over the pixel limit": (
            ["run", "read the text in this image", "-i", folder / "bomb.png"],
            ["'bomb.png' has far too many pixels", "resize it first"],
        ),
        "empty request": (["run", ""], ["request is empty"]),
        "blank request with a file": (["run", "   ", "-i", sign], ["request is empty"]),
        "invalid JSON plan": (["run", "--plan", not_json, "-i", sign], ["invalid plan", "not valid JSON", "line 1"]),
        "missing plan file": (["run", "--plan", folder / "absent.json"], ["cannot read plan file", "absent.json"]),
        "plan path is a folder": (["run", "--plan", folder], ["cannot read plan file", "Is a directory"]),
        "plan file that is not text": (["run", "--plan", binary_plan], ["binary.json", "is not UTF-8 text"]),
        "plan with an unknown task": (
            ["run", "--plan", unknown_task],
            ["invalid plan", "unknown task 'teleportation'"],
        ),
        "plan naming an unattached file": (
            ["run", "--plan", unknown_file, "-i", sign],
            ["'other.png'", "attach it with -i"],
        ),
        "unknown model": (
            [*ocr, "--model", "image-to-text=acme/no-such-model"],
            ["unknown model 'acme/no-such-model'"],
        ),
        "model for the wrong task": (
            [*ocr, "--model", "image-to-text=builtin/espeak-ng"],
            ["builtin/espeak-ng does text-to-speech, not image-to-text"],
        ),
        "model for an unknown task": (
            [*ocr, "--model", "teleportation=builtin/tesseract"],
            ["unknown task 'teleportation'"],
        ),
        "malformed --model": ([*ocr, "--model", "builtin/tesseract"], ["must look like TASK=MODEL"]),
        "unknown run id": (["runs", "show", "ffffffffffff"], ["no run with id 'ffffffffffff'"]),
        "unknown task group": (["tasks", "--group", "cooking"], ["no task group 'cooking'"]),
        "models for an unknown task": (["models", "--task", "teleportation"], ["unknown task 'teleportation'"]),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "input is a folder",
        "unsupported file type",
        "corrupt image",
        "empty image file",
        "image over the pixel limit",
        "image far over the pixel limit",
        "empty request",
        "blank request with a file",
        "invalid JSON plan",
        "missing plan file",
        "plan path is a folder",
        "plan file that is not text",
        "plan with an unknown task",
        "plan naming an unattached file",
        "unknown model",
        "model for the wrong task",
        "model for an unknown task",
        "malformed --model",
        "unknown run id",
        "unknown task group",
        "models for an unknown task",
    ],
)
def test_bad_input_is_one_clear_line_and_loses_nothing(
    case: str, bad_inputs: dict[str, tuple[list[str | Path], list[str]]], tmp_path: Path, populated: Populated
) -> None:
    args, fragments = bad_inputs[case]
    done = populated.baton(*args, cwd=tmp_path)
    assert_one_line_error(done, *fragments)
    assert done.stdout == ""
    # nothing stored is lost, and no run is recorded for input that was refused
    after = populated.baton("runs", "--json")
    assert after.code == 0, after
    assert after.json() == populated.runs
    for path in populated.readme["artifacts"].values():
        assert Path(path).is_file()


# failed tasks: exit 1, the answer says why, dependants are skipped


def test_failed_task_exits_1_with_the_reason_and_the_skipped_dependant(
    tmp_path: Path, baton: Baton, sign_image: Path
) -> None:
    plan = write_plan(
        tmp_path,
        [
            {"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "sign.png", "lang": "xyz"}},
            {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
        ],
    )
    done = baton("run", "--plan", plan, "-i", sign_image, cwd=tmp_path)
    assert done.code == 1, done
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("0 of 2 tasks succeeded.")
    assert "[0] image-to-text (builtin/tesseract" in done.stdout
    assert "failed: Tesseract has no 'xyz' language data" in done.stdout
    assert "sudo apt-get install tesseract-ocr-xyz" in done.stdout
    assert "[1] text-to-speech (builtin/espeak-ng): skipped: skipped because task 0 failed" in done.stdout
    assert "Files:" not in done.stdout
    (run,) = baton("runs", "--json").json()
    assert run["status"] == "failed"
    assert [(t["status"], t["model"]) for t in run["tasks"]] == [
        ("failed", "builtin/tesseract"),
        ("skipped", "builtin/espeak-ng"),
    ]


def test_task_without_an_expert_fails_and_the_rest_of_the_plan_runs(
    tmp_path: Path, baton: Baton, sign_image: Path
) -> None:
    plan = write_plan(
        tmp_path,
        [
            {"task": "image-search-by-image", "id": 0, "dep": [-1], "args": {"image": "sign.png"}},
            {"task": "image-to-text", "id": 1, "dep": [0], "args": {"image": "<GENERATED>-0"}},
            {"task": "image-to-text", "id": 2, "dep": [-1], "args": {"image": "sign.png"}},
        ],
    )
    done = baton("run", "--plan", plan, "-i", sign_image, cwd=tmp_path)
    assert done.code == 1, done
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "1 of 3 tasks succeeded."
    assert lines[1].startswith("[0] image-search-by-image: failed: no model for image-search-by-image")
    assert lines[2].startswith(
        "[1] image-to-text (builtin/tesseract): skipped: skipped because task 0 failed: no model"
    )
    assert lines[3].startswith("[2] image-to-text (builtin/tesseract") and lines[3].endswith(f'"{EXAMPLE_TEXT}"')
    json_done = baton("run", "--plan", plan, "-i", sign_image, "--json", cwd=tmp_path)
    assert json_done.code == 1, json_done
    result = json_done.json()
    assert [t["status"] for t in result["tasks"]] == ["failed", "skipped", "succeeded"]
    assert result["tasks"][0]["model"] is None
    assert "no model for image-search-by-image" in result["tasks"][0]["error"]
    assert result["artifacts"] == {}


# listing tasks, models, runs and sessions


def test_tasks_lists_every_task_and_what_can_run_here(baton: Baton) -> None:
    done = baton("tasks", "--json")
    assert done.code == 0, done
    tasks = done.json()
    assert len(tasks) >= 24 + 16 + 5 + 33
    names = [task["name"] for task in tasks]
    assert len(set(names)) == len(names)
    groups = {group: sum(task["group"] == group for task in tasks) for group in {task["group"] for task in tasks}}
    assert groups["huggingface"] >= 24
    assert groups["controlnet"] >= 16
    assert groups["editing"] >= 5
    assert groups["multimedia"] >= 33
    by_name = {task["name"]: task for task in tasks}
    ocr = by_name["image-to-text"]
    assert ocr["expert"] == "builtin/tesseract" and ocr["why_not"] is None
    assert ocr["inputs"] == [{"name": "image", "kind": "image", "optional": False}]
    assert ocr["outputs"] == [{"name": "text", "kind": "text"}]
    assert "ocr" in ocr["aliases"]
    assert by_name["text-to-speech"]["expert"] == "builtin/espeak-ng"
    for task in tasks:
        assert task["description"] and task["outputs"], task["name"]
        assert (task["expert"] is None) == bool(task["why_not"]), task["name"]
    table = baton("tasks")
    assert table.code == 0, table
    assert f"{len(tasks)} tasks" in table.stdout
    ocr_row = next(line for line in table.stdout.splitlines() if " image-to-text " in line)
    assert "builtin/tesseract" in ocr_row
    controlnet = baton("tasks", "--group", "controlnet", "--json")
    assert controlnet.code == 0, controlnet
    assert {task["group"] for task in controlnet.json()} == {"controlnet"}
    assert len(controlnet.json()) == groups["controlnet"]


def test_models_shows_the_builtin_experts_available(baton: Baton) -> None:
    done = baton("models", "--json")
    assert done.code == 0, done
    cards = {card["id"]: card for card in done.json()}
    assert cards["builtin/tesseract"]["task"] == "image-to-text"
    assert cards["builtin/espeak-ng"]["task"] == "text-to-speech"
    for model_id in ("builtin/tesseract", "builtin/espeak-ng"):
        assert cards[model_id]["missing"] == [], model_id
        assert cards[model_id]["backend"] == "builtin"
    table = baton("models")
    assert table.code == 0, table
    for model_id in ("builtin/tesseract", "builtin/espeak-ng"):
        row = next(line for line in table.stdout.splitlines() if model_id in line)
        assert "yes" in row
    only_ocr = baton("models", "--task", "ocr", "--json")  # an alias of image-to-text
    assert only_ocr.code == 0, only_ocr
    assert {card["task"] for card in only_ocr.json()} == {"image-to-text"}
    assert "builtin/tesseract" in {card["id"] for card in only_ocr.json()}


def test_runs_lists_past_runs_newest_first(populated: Populated) -> None:
    runs = populated.runs
    assert [run["id"] for run in runs] == [populated.say["run_id"], populated.readme["run_id"]]
    assert all(run["status"] == "succeeded" for run in runs)
    assert runs[1]["request"] == README_REQUEST
    assert EXAMPLE_TEXT in runs[1]["answer"]
    assert [t["model"] for t in runs[1]["tasks"]] == ["builtin/tesseract", "builtin/espeak-ng"]
    table = populated.baton("runs")
    assert table.code == 0, table
    row = next(line for line in table.stdout.splitlines() if populated.readme["run_id"] in line)
    assert "succeeded" in row and "image-to-text -> text-to-speech" in row and README_REQUEST in row
    found = populated.baton("runs", "--search", "hello there", "--json").json()
    assert [run["id"] for run in found] == [populated.say["run_id"]]
    newest = populated.baton("runs", "--limit", "1", "--json").json()
    assert [run["id"] for run in newest] == [populated.say["run_id"]]


def test_runs_show_prints_tasks_models_and_statuses(populated: Populated) -> None:
    run_id = populated.readme["run_id"]
    for given in (run_id, run_id[:6]):  # a unique prefix is enough
        done = populated.baton("runs", "show", given)
        assert done.code == 0, done
        assert f"run {run_id} succeeded" in done.stdout
        assert f"request: {README_REQUEST}" in done.stdout
        assert "[0] image-to-text  builtin/tesseract  succeeded" in done.stdout
        assert "[1] text-to-speech  builtin/espeak-ng  succeeded" in done.stdout
        assert f'text: "{EXAMPLE_TEXT}"' in done.stdout
        assert "answer:" in done.stdout
    record = populated.baton("runs", "show", run_id, "--json").json()
    assert record["id"] == run_id and record["status"] == "succeeded"
    assert [t["status"] for t in record["tasks"]] == ["succeeded", "succeeded"]
    assert record["plan"]["tasks"][0]["args"] == {"image": "sign.png"}


def test_named_session_keeps_files_for_later_runs(tmp_path: Path, baton: Baton, sign_image: Path) -> None:
    first = baton("run", "read the text in this image", "-i", sign_image, "--session", "trip", "--json")
    assert first.code == 0, first
    plan = write_plan(tmp_path, ocr_then_speak_plans()["hugginggpt"])
    # a later run names 'sign.png' without attaching it again
    second = baton("run", "--plan", plan, "--session", "trip", "--json", cwd=tmp_path)
    assert second.code == 0, second
    assert second.json()["session_id"] == first.json()["session_id"]
    assert second.json()["tasks"][0]["outputs"]["text"]["value"] == EXAMPLE_TEXT
    # another session does not know the file
    other = baton("run", "--plan", plan, "--session", "elsewhere", cwd=tmp_path)
    assert_one_line_error(other, "'sign.png' is not known to this session")
    sessions = baton("sessions", "--json")
    assert sessions.code == 0, sessions
    trip = next(s for s in sessions.json() if s["name"] == "trip")
    assert trip["id"] == first.json()["session_id"]
    assert trip["runs"] == 2
    table = baton("sessions")
    row = next(line for line in table.stdout.splitlines() if " trip " in line)
    assert trip["id"] in row and row.rstrip().rstrip("│ ").endswith("2")


# the command itself


def test_python_dash_m_baton_help(baton_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "baton", "--help"], capture_output=True, text=True, timeout=60, env=baton_env(baton_home)
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: baton" in done.stdout
    for command in ("run", "tasks", "models", "runs", "sessions"):
        assert f"  {command} " in done.stdout


def test_version(baton: Baton) -> None:
    from baton import __version__

    done = baton("--version")
    assert (done.code, done.stdout.strip()) == (0, f"baton {__version__}")


HELP_PROBE = """
import json, sys
import baton.cli
try:
    baton.cli.app(["--help"], prog_name="baton")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def test_help_does_not_import_heavy_modules() -> None:
    done = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: baton" in done.stdout
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0
    loaded = set(report["modules"])
    assert "baton.cli" in loaded  # the probe did import it
    heavy = {
        "pydantic", "PIL", "pytesseract", "numpy", "torch", "transformers", "cv2",  # libraries
        "rich.live", "rich.table", "sqlite3", "asyncio",  # used only by commands
        "baton.assistant", "baton.store", "baton.catalog", "baton.plan", "baton.media",  # baton's own
    }  # fmt: skip
    assert sorted(heavy & loaded) == []


# Ctrl-C


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == pid:
            found.append((int(entry.name), name))
    return found


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see when the task is running")
@pytest.mark.parametrize("target", ["terminal", "process"])
def test_sigint_during_a_run_exits_130_and_records_it_interrupted(
    target: str, tmp_path: Path, baton_home: Path, baton: Baton
) -> None:
    # a slow task: eSpeak NG speaking a long text at its slowest speed takes seconds
    text = " ".join(["The quick brown fox jumps over the lazy dog."] * 600)
    plan = write_plan(tmp_path, [{"task": "text-to-speech", "id": 0, "dep": [-1], "args": {"text": text, "speed": 80}}])
    process = subprocess.Popen(
        [*baton_command(), "run", "--plan", str(plan)],
        cwd=tmp_path,
        env=baton_env(baton_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 30
        while not (speakers := [pid for pid, name in _children(process.pid) if name == "espeak-ng"]):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "espeak-ng never started"
            time.sleep(0.02)
        if target == "terminal":  # Ctrl-C: the whole foreground group gets SIGINT
            os.killpg(process.pid, signal.SIGINT)
        else:  # kill -INT PID: only baton gets it
            os.kill(process.pid, signal.SIGINT)
        interrupted = time.monotonic()
        stdout, stderr = process.communicate(timeout=60)
        # baton stops at once (speaking the text takes far longer) and takes eSpeak NG with it
        assert time.monotonic() - interrupted < 5
        deadline = time.monotonic() + 5
        while _alive(speakers[0]):
            assert time.monotonic() < deadline, "espeak-ng kept running after baton stopped"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    done = Done(("run", "--plan", str(plan)), process.returncode, stdout, stderr)
    assert done.code == 130, done
    assert "Traceback" not in stderr
    assert stdout == ""
    (message,) = done.error_lines()
    assert message.startswith("error: interrupted; run ")
    runs = baton("runs", "--json").json()
    (run,) = runs
    assert run["id"] in message
    assert run["status"] == "interrupted"
    assert run["error"] == "cancelled by the user"
    assert [(t["status"], t["model"]) for t in run["tasks"]] == [("cancelled", "builtin/espeak-ng")]
    assert "cancelled" in run["answer"]
    assert baton("runs", "show", run["id"]).stdout.startswith(f"run {run['id']} interrupted")


# brackets in names and messages are shown as written, never read as rich markup


def test_brackets_in_file_names_requests_and_session_names_are_shown_as_written(tmp_path: Path, baton: Baton) -> None:
    image = tmp_path / "sign[draft].png"
    image.write_bytes(EXAMPLE_IMAGE.read_bytes())
    request = "read the text [/b] in this [bold]image"
    done = baton("run", request, "-i", image, "--session", "[/trip]", "--json")
    assert done.code == 0, done
    run_id = done.json()["run_id"]
    row = next(line for line in baton("runs").stdout.splitlines() if run_id in line)
    assert request in row
    shown = baton("runs", "show", run_id)
    assert shown.code == 0, shown
    assert f"request: {request}" in shown.stdout
    assert '"image": "sign[draft].png"' in shown.stdout
    sessions = baton("sessions")
    assert any(line.startswith("│ [/trip] ") for line in sessions.stdout.splitlines()), sessions
    missing = baton("run", "read the text", "-i", tmp_path / "scan[/x].png")
    assert_one_line_error(missing, "scan[/x].png", "does not exist")


def test_missing_module_fix_is_shown_everywhere_with_its_brackets(
    tmp_path: Path, baton_home: Path, monkeypatch: pytest.MonkeyPatch, sign_image: Path
) -> None:
    # in-process, with a catalogue whose only image-to-text model lacks a Python module
    from typer.testing import CliRunner

    import baton.assistant
    import baton.catalog
    from baton.catalog import Catalog, ModelCard
    from baton.cli import app

    card = ModelCard(
        id="test/needs-module",
        task="image-to-text",
        backend="transformers",
        description="a model whose module is absent",
        factory="x:Y",
        python=("baton_test_no_such_module",),
        extra="vision",
    )
    monkeypatch.setattr(baton.catalog, "load_catalog", lambda: Catalog([card]))
    monkeypatch.setattr(baton.assistant, "load_catalog", lambda: Catalog([card]))
    monkeypatch.setenv("COLUMNS", "300")
    fix = "pip install 'baton[vision]'"
    runner = CliRunner()

    models = runner.invoke(app, ["models"])
    assert models.exit_code == 0, models.output
    row = next(line for line in models.output.splitlines() if "test/needs-module" in line)
    assert "no: Python module baton_test_no_such_module is not installed: " + fix in row

    tasks = runner.invoke(app, ["tasks", "--json"])
    assert tasks.exit_code == 0, tasks.output
    ocr = next(task for task in json.loads(tasks.output) if task["name"] == "image-to-text")
    assert ocr["expert"] is None
    assert fix in ocr["why_not"] and "test/needs-module" in ocr["why_not"]

    plan = write_plan(tmp_path, ocr_then_speak_plans()["hugginggpt"][:1])
    ran = runner.invoke(app, ["run", "--plan", str(plan), "-i", str(sign_image), "--json"])
    assert ran.exit_code == 1, ran.output
    result = json.loads(ran.stdout)
    assert result["tasks"][0]["status"] == "failed"
    assert fix in result["tasks"][0]["error"]
    shown = runner.invoke(app, ["runs", "show", result["run_id"]])
    assert shown.exit_code == 0, shown.output
    assert "error: no model for image-to-text can run here. To make one available: test/needs-module: " in shown.output
    assert shown.output.count(fix) == 2  # in the task's error and in the answer

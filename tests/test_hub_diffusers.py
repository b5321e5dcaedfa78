"""Diffusers experts on tiny random pipelines, registered like a user's folder and run through the Assistant.

Text-to-image, ControlNet generation, image-to-image, instruct-pix2pix, outpainting and remove/replace object
(inpainting over a CLIPSeg mask) run as plans with the registered model forced for their task; a plan across
transformers and diffusers runs through ``baton run --plan``. Outputs are checked for kind and size only.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from PIL import Image

import tiny_diffusers as tiny
import tiny_models
from baton.assistant import Assistant, Result
from baton.catalog import load_catalog
from baton.config import Settings
from baton.experts import ExpertError
from baton.experts.hub import add_local_model, local_models
from baton.media import BadInput
from baton.plan import Plan, Task
from conftest import baton_command, baton_env

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run far faster on one thread than fighting over a shared machine's cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny pipeline, saved once for the whole test session."""
    root = tmp_path_factory.mktemp("tiny-diffusers")
    return {
        "sd": tiny.save_text_to_image(root / "sd"),
        "controlnet": tiny.save_controlnet(root / "controlnet"),
        "inpaint": tiny.save_inpainting(root / "inpaint", segmenter=True),
        "inpaint-bare": tiny.save_inpainting(root / "inpaint-bare"),
        "blind": tiny.save_inpainting(root / "blind", segmenter=True, segmenter_finds=False),
        "pix2pix": tiny.save_instruct_pix2pix(root / "pix2pix"),
        "gpt2": tiny_models.gpt2_generator(root / "gpt2"),
    }


@pytest.fixture
def settings(baton_home: Path) -> Settings:
    return Settings(home=baton_home, cpu_slots=2, task_timeout=120)


@pytest.fixture
def assistant(settings: Settings) -> Iterator[Any]:
    made: list[Assistant] = []

    def make() -> Assistant:
        made.append(Assistant(settings, catalog=load_catalog()))  # the catalogue reads models.json afresh
        return made[-1]

    yield make
    for one in made:
        one.close()


def picture(path: Path, size: tuple[int, int], colour: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    image.paste("blue", (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    image.save(path)
    return path


async def run_one(
    make: Any, task: str, model_id: str, args: dict[str, Any], inputs: tuple[Path, ...] = ()
) -> tuple[Result, Image.Image]:
    """One task with the registered model forced; returns the result and its image output (checked)."""
    result: Result = await make().run(
        task, list(inputs), plan=Plan(tasks=[Task(id=0, task=task, args=args)]), models={task: model_id}
    )
    record = result.run.task(0)
    assert result.ok, record.error
    assert record.model == model_id
    output = result.outputs[0]["image"]
    assert output.kind == "image" and output.artifact is not None
    assert output.artifact.path.suffix == ".png"
    with Image.open(output.artifact.path) as image:
        image.load()
    return result, image


# registering folders


def test_a_stable_diffusion_folder_gets_the_pipeline_class_of_each_task(
    folders: dict[str, Path], settings: Settings
) -> None:
    expected = {
        "text-to-image": "StableDiffusionPipeline",
        "image-to-image": "StableDiffusionImg2ImgPipeline",
        "instruct-image-editing": "StableDiffusionImg2ImgPipeline",  # not a pix2pix model: img2img by instruction
        "outpainting": "StableDiffusionInpaintPipeline",
    }
    for task, class_name in expected.items():
        entry = add_local_model(folders["sd"], task, f"tiny/sd-{task}", settings)
        assert entry["backend"] == "diffusers"
        assert entry["hub"]["class"] == class_name, task
        assert entry["hub"]["path"] == str(folders["sd"].resolve())
    assert local_models(settings)["tiny/sd-outpainting"]["hub"]["outpaint"] is True
    pix2pix = add_local_model(folders["pix2pix"], "instruct-image-editing", "tiny/p2p", settings)
    assert pix2pix["hub"]["class"] == "StableDiffusionInstructPix2PixPipeline"
    control = add_local_model(folders["controlnet"], "canny-text-to-image", "tiny/cn", settings)
    assert control["hub"]["class"] == "StableDiffusionControlNetPipeline"
    assert add_local_model(folders["controlnet"], "text-to-image", "tiny/cn-t2i", settings)["hub"]["class"] == (
        "StableDiffusionPipeline"
    )
    remove = add_local_model(folders["inpaint"], "remove-object", "tiny/rm", settings)
    assert remove["hub"]["mask_from"] == str(folders["inpaint"].resolve() / "segmenter")
    assert remove["hub"]["prompt"] == "background"


def test_folders_missing_a_companion_or_registered_for_a_foreign_task_are_refused(
    folders: dict[str, Path], settings: Settings
) -> None:
    with pytest.raises(BadInput, match="no controlnet subfolder; canny-text-to-image needs a ControlNetModel"):
        add_local_model(folders["sd"], "canny-text-to-image", "tiny/no-cn", settings)
    with pytest.raises(BadInput, match="no segmenter subfolder; replace-object finds the object with a CLIPSeg"):
        add_local_model(folders["inpaint-bare"], "replace-object", "tiny/no-seg", settings)
    with pytest.raises(BadInput, match="a diffusers folder cannot be registered for summarization"):
        add_local_model(folders["sd"], "summarization", "tiny/sum", settings)
    assert local_models(settings) == {}


# generation through the Assistant


async def test_text_to_image_makes_an_image_of_the_model_size(
    folders: dict[str, Path], settings: Settings, assistant: Any
) -> None:
    add_local_model(folders["sd"], "text-to-image", "tiny/sd", settings)
    result, image = await run_one(assistant, "text-to-image", "tiny/sd", {"text": "a red cat"})
    assert image.size == (tiny.IMAGE, tiny.IMAGE) and image.mode == "RGB"
    assert result.run.status == "succeeded"


async def test_controlnet_generation_follows_the_condition_image_size(
    folders: dict[str, Path], settings: Settings, assistant: Any, tmp_path: Path
) -> None:
    add_local_model(folders["controlnet"], "canny-text-to-image", "tiny/canny", settings)
    edges = picture(tmp_path / "inputs" / "edges.png", (48, 32), "black")
    _, image = await run_one(
        assistant, "canny-text-to-image", "tiny/canny", {"image": "edges.png", "prompt": "a red cat"}, (edges,)
    )
    assert image.size == (48, 32)


async def test_image_to_image_from_the_text_to_image_folder_keeps_the_input_size(
    folders: dict[str, Path], settings: Settings, assistant: Any, tmp_path: Path
) -> None:
    add_local_model(folders["sd"], "image-to-image", "tiny/img2img", settings)
    photo = picture(tmp_path / "inputs" / "photo.png", (44, 30))  # sides rounded down to multiples of 8
    _, image = await run_one(
        assistant, "image-to-image", "tiny/img2img", {"image": "photo.png", "instruction": "make it blue"}, (photo,)
    )
    assert image.size == (40, 24)


async def test_instruct_pix2pix_edits_the_image(
    folders: dict[str, Path], settings: Settings, assistant: Any, tmp_path: Path
) -> None:
    add_local_model(folders["pix2pix"], "instruct-image-editing", "tiny/pix2pix", settings)
    photo = picture(tmp_path / "inputs" / "photo.png", (32, 40))
    _, image = await run_one(
        assistant,
        "instruct-image-editing",
        "tiny/pix2pix",
        {"image": "photo.png", "instruction": "make it snowy"},
        (photo,),
    )
    assert image.size == (32, 40)


async def test_outpainting_extends_the_image_beyond_its_borders(
    folders: dict[str, Path], settings: Settings, assistant: Any, tmp_path: Path
) -> None:
    add_local_model(folders["inpaint"], "outpainting", "tiny/outpaint", settings)
    photo = picture(tmp_path / "inputs" / "photo.png", (32, 48))
    _, image = await run_one(assistant, "outpainting", "tiny/outpaint", {"image": "photo.png"}, (photo,))
    assert image.size == (48, 64)  # a quarter of each side (down to a multiple of 8) added on every edge


@pytest.mark.parametrize(
    ("task", "args"),
    [
        ("remove-object", {"object": "the blue square"}),
        ("replace-object", {"object": "the blue square", "replacement": "a red cat"}),
    ],
)
async def test_remove_and_replace_object_paint_over_the_segmenter_mask(
    folders: dict[str, Path], settings: Settings, assistant: Any, tmp_path: Path, task: str, args: dict[str, str]
) -> None:
    add_local_model(folders["inpaint"], task, f"tiny/{task}", settings)
    photo = picture(tmp_path / "inputs" / "photo.png", (40, 32))
    _, image = await run_one(assistant, task, f"tiny/{task}", {"image": "photo.png", **args}, (photo,))
    assert image.size == (40, 32)


async def test_pipelines_loaded_by_parallel_tasks_both_work(
    folders: dict[str, Path], settings: Settings, assistant: Any, tmp_path: Path
) -> None:
    """Two pipelines loading at once once left every later model on the meta device (accelerate's global patch)."""
    add_local_model(folders["sd"], "text-to-image", "tiny/sd", settings)
    add_local_model(folders["inpaint"], "outpainting", "tiny/outpaint", settings)
    add_local_model(folders["pix2pix"], "instruct-image-editing", "tiny/pix2pix", settings)
    photo = picture(tmp_path / "inputs" / "photo.png", (32, 32))
    plan = Plan(
        tasks=[
            Task(id=0, task="text-to-image", args={"text": "a red cat"}),
            Task(id=1, task="outpainting", args={"image": "photo.png"}),
            Task(id=2, task="instruct-image-editing", args={"image": "photo.png", "instruction": "make it snowy"}),
        ]
    )
    models = {"text-to-image": "tiny/sd", "outpainting": "tiny/outpaint", "instruct-image-editing": "tiny/pix2pix"}
    result = await assistant().run("three at once", [photo], plan=plan, models=models)
    assert result.ok, [task.error for task in result.run.tasks]
    assert {task_id: outputs["image"].kind for task_id, outputs in result.outputs.items()} == {
        0: "image",
        1: "image",
        2: "image",
    }


async def test_an_object_the_segmenter_cannot_find_fails_the_task_with_the_reason(
    folders: dict[str, Path], settings: Settings, assistant: Any, tmp_path: Path
) -> None:
    add_local_model(folders["blind"], "remove-object", "tiny/blind", settings)
    photo = picture(tmp_path / "inputs" / "photo.png", (32, 32))
    plan = Plan(tasks=[Task(id=0, task="remove-object", args={"image": "photo.png", "object": "a unicorn"})])
    result = await assistant().run("remove", [photo], plan=plan, models={"remove-object": "tiny/blind"})
    assert not result.ok
    assert result.run.task(0).error == "could not find 'a unicorn' in the image; name the object differently"


# options the expert reads, on the expert the cache hands out


def test_image_to_image_runs_at_least_one_denoising_step_and_checks_its_options(
    folders: dict[str, Path], settings: Settings, expert_ctx: Any, tmp_path: Path
) -> None:
    from baton.media import Resource

    add_local_model(folders["sd"], "image-to-image", "tiny/img2img", settings)
    card = load_catalog().get("tiny/img2img")
    expert = card.build()
    expert.load()
    photo = Resource.media(expert_ctx.save_file(picture(tmp_path / "photo.png", (32, 32))))
    inputs = {"image": photo, "instruction": Resource.text("make it blue")}
    # 1 step at strength 0.3 would denoise int(0.3) = 0 steps, which diffusers refuses
    out = expert.run(inputs, {"steps": "1", "strength": "0.3", "seed": "5"}, expert_ctx)
    with Image.open(out["image"].path) as image:
        assert image.size == (32, 32)
    with pytest.raises(ExpertError, match=r"strength 1\.5 is out of range"):
        expert.run(inputs, {"strength": "1.5"}, expert_ctx)
    with pytest.raises(ExpertError, match="steps must be a whole number, not 'many'"):
        expert.run(inputs, {"steps": "many"}, expert_ctx)
    assert expert.measured_bytes() > 0
    expert.unload()
    assert expert.pipe is None and not expert.loaded


def test_text_to_image_takes_a_size_and_steps(folders: dict[str, Path], settings: Settings, expert_ctx: Any) -> None:
    from baton.media import Resource

    add_local_model(folders["sd"], "text-to-image", "tiny/sd", settings)
    expert = load_catalog().get("tiny/sd").build()
    expert.load()
    out = expert.run({"text": Resource.text("a cat")}, {"steps": "2", "size": "64x72"}, expert_ctx)
    with Image.open(out["image"].path) as image:
        assert image.size == (64, 72)
    with pytest.raises(ExpertError, match="size 60x60 must be multiples of 8"):
        expert.run({"text": Resource.text("a cat")}, {"size": "60x60"}, expert_ctx)


def test_a_controlnet_folder_without_its_controlnet_fails_to_load_with_the_fix(
    folders: dict[str, Path], settings: Settings, tmp_path: Path
) -> None:
    import shutil

    copy = shutil.copytree(folders["controlnet"], tmp_path / "cn-copy")
    add_local_model(copy, "canny-text-to-image", "tiny/cn-copy", settings)
    shutil.rmtree(copy / "controlnet")
    expert = load_catalog().get("tiny/cn-copy").build()
    with pytest.raises(ExpertError, match="has no ControlNet: save a ControlNetModel into"):
        expert.load()


# the command line, across backends


@pytest.mark.slow
def test_baton_run_plan_across_transformers_and_diffusers(folders: dict[str, Path], baton_home: Path) -> None:
    """text-generation (GPT-2) -> text-to-image -> image-to-image, and an outpainting of the generated image."""
    env = {**baton_env(baton_home), "OMP_NUM_THREADS": "1"}

    def baton(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*baton_command(), *(str(a) for a in args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    for folder, task, model_id in [
        (folders["gpt2"], "text-generation", "tiny/gpt2"),
        (folders["sd"], "text-to-image", "tiny/sd"),
        (folders["sd"], "image-to-image", "tiny/img2img"),
        (folders["inpaint"], "outpainting", "tiny/outpaint"),
    ]:
        added = baton("models", "add", folder, "--task", task, "--id", model_id)
        assert added.returncode == 0, added.stderr
    listed = baton("models", "--json")
    assert listed.returncode == 0, listed.stderr
    ours = {card["id"]: card for card in json.loads(listed.stdout) if card["id"].startswith("tiny/")}
    assert set(ours) == {"tiny/gpt2", "tiny/sd", "tiny/img2img", "tiny/outpaint"}
    assert all(card["missing"] == [] for card in ours.values())

    plan = {
        "tasks": [
            {"id": 0, "task": "text-generation", "args": {"text": "A picture of"}},
            {"id": 1, "task": "text-to-image", "args": {"text": "<GENERATED>-0"}, "dep": [0]},
            {
                "id": 2,
                "task": "image-to-image",
                "args": {"image": "<GENERATED>-1", "instruction": "in blue"},
                "dep": [1],
            },
            {"id": 3, "task": "outpainting", "args": {"image": "<GENERATED>-1"}, "dep": [1]},
        ]
    }
    plan_file = baton_home.parent / "plan.json"
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    done = baton(
        "run",
        "--plan",
        plan_file,
        "--json",
        "--model",
        "text-generation=tiny/gpt2",
        "--model",
        "text-to-image=tiny/sd",
        "--model",
        "image-to-image=tiny/img2img",
        "--model",
        "outpainting=tiny/outpaint",
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    tasks = {task["id"]: task for task in result["tasks"]}
    assert [tasks[i]["model"] for i in range(4)] == ["tiny/gpt2", "tiny/sd", "tiny/img2img", "tiny/outpaint"]
    assert all(task["status"] == "succeeded" for task in tasks.values())
    assert tasks[0]["outputs"]["text"]["kind"] == "text"
    sizes = {}
    for i in (1, 2, 3):
        image_output = tasks[i]["outputs"]["image"]
        assert image_output["kind"] == "image"
        with Image.open(result["artifacts"][image_output["artifact"]]) as image:
            sizes[i] = image.size
    assert sizes[1] == sizes[2] == (tiny.IMAGE, tiny.IMAGE)
    assert sizes[3] == (tiny.IMAGE + 16, tiny.IMAGE + 16)
    assert os.path.isdir(baton_home)

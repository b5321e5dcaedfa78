"""TaskBench executability: can baton's offline builtin experts run TaskBench's gold plans end to end?

    .venv/bin/python benchmarks/bench_taskbench_exec.py [--domain huggingface|multimedia|all] [--limit N] [--verbose]

For each domain's dev split (TaskBench data, see ../shared/taskbench/README.md beside the repository):

1. example inputs are generated in a temporary folder: example.jpg (a photo), example.png (printed text),
   example.wav (eSpeak NG speech), example.mp3, example.mp4 (test pattern with the speech as its sound),
   example.txt (a paragraph), and numbered variants (example1.jpg, example2.wav, ...) that plans also use;
2. each gold plan is read with ``baton.plan.parse_plan`` (TaskBench format) and validated with those files
   known; a plan that fails here has a gold-label defect (an unknown tool, an argument that fits no input,
   a file given as a URL, ...) and is counted apart, by reason. baton has no text-file input, so the name
   ``example.txt`` in an argument is replaced by the file's text before parsing;
3. (a) coverage: the share of valid plans whose every task has a runnable builtin expert in the catalogue
   (``baton.select.select`` over ``baton.catalog.load_catalog()``), and the tasks that block the others;
4. (b) of the covered plans, the share that run end to end without error through ``baton.assistant.Assistant``
   (the plan given, the example files it names as inputs, a temporary BATON_HOME, network access off).
   Downloaders cannot succeed without the network, so plans that need them are also shown apart.

Options: --domain, --limit N (first N records per domain), --verbose (list defects and failures with errors),
--data DIR (the TaskBench folder; default $BATON_TASKBENCH or ../shared/taskbench beside the repository), --task-timeout S.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.media import kind_of_filename

DOMAINS = ("huggingface", "multimedia")
DEFAULT_DATA = Path(os.environ.get("BATON_TASKBENCH", Path(__file__).resolve().parents[2] / "shared" / "taskbench"))
FILE_TOKEN = re.compile(r"[\w./-]+\.[A-Za-z0-9]{2,5}\b")
NETWORK_OFF = "network access is disabled"

EXAMPLE_TEXT = (
    "Renewable energy comes from sources that nature replenishes, such as sunlight, wind, rain, tides and "
    "geothermal heat. Solar panels turn sunlight directly into electricity, while wind turbines capture the "
    "energy of moving air. In 2023, renewable sources produced about 30% of the world's electricity, and the "
    "share keeps rising every year. Storing energy remains the main challenge, because the sun does not always "
    "shine and the wind does not always blow. Batteries, pumped hydro and green hydrogen are the most promising "
    "ways to store it. Governments in Europe, China and the United States are investing billions of dollars in "
    "new grids. Experts expect renewable energy to supply most of the world's power by 2050. Switching to clean "
    "energy also reduces air pollution and slows climate change."
)
SPEECH = [
    "Hello, this is an example recording. The meeting starts at ten o'clock tomorrow morning in the main hall.",
    "Good afternoon everyone. Today we will talk about the weather and the new train schedule.",
    "Please remember to bring your notebook and a pen to the workshop on Friday.",
]


# example files


def _photo(index: int) -> Any:
    """A real photo from scikit-image's bundled samples, or a drawn scene when they are not available."""
    from PIL import Image, ImageDraw

    names = ["astronaut", "chelsea", "coffee", "rocket", "camera"]
    try:
        import skimage.data

        array = getattr(skimage.data, names[index % len(names)])()
        return Image.fromarray(array).convert("RGB")
    except Exception:
        image = Image.new("RGB", (480, 360), (90 + 30 * index, 140, 200))
        pen = ImageDraw.Draw(image)
        pen.ellipse((150, 90, 330, 270), fill=(230, 200, 60))
        pen.rectangle((40, 260, 440, 340), fill=(60, 120, 60))
        return image


def _text_image(text: str) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=40)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (int(right - left) + 80, int(bottom - top) + 60), "white")
    ImageDraw.Draw(image).text((40 - left, 30 - top), text, fill="black", font=font)
    return image


def _speech(path: Path, text: str) -> None:
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), "--stdin"], input=text.encode(), check=True)
        return
    rate = 16000  # no espeak-ng: a tone, so that the file at least exists
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(rate * 3)))


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_examples(folder: Path) -> dict[str, Path]:
    """Generate the example inputs the gold plans name; returns file name -> path."""
    files: dict[str, Path] = {}

    def add(name: str) -> Path:
        files[name] = folder / name
        return files[name]

    _photo(0).save(add("example.jpg"), quality=92)
    _text_image("Welcome to the baton benchmark").save(add("example.png"))
    for number in range(1, 5):
        _photo(number).save(add(f"example{number}.jpg"), quality=92)
    _text_image("Second example with printed text").save(add("example2.png"))
    _photo(2).save(add("example_style.jpg"), quality=92)
    _speech(add("example.wav"), SPEECH[0])
    _speech(add("example1.wav"), SPEECH[1])
    _speech(add("example2.wav"), SPEECH[2])
    if shutil.which("ffmpeg"):
        _ffmpeg("-i", str(files["example.wav"]), "-c:a", "libmp3lame", "-b:a", "96k", str(add("example.mp3")))
        _ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=6", "-i", str(files["example.wav"]),
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            str(add("example.mp4")),
        )  # fmt: skip
    add("example.txt").write_text(EXAMPLE_TEXT + "\n")
    return files


# plans


@dataclass
class Outcome:
    record_id: str
    status: str  # defect | blocked | succeeded | failed
    reasons: list[str] = field(default_factory=list)  # defect reasons or blocking tasks
    detail: str = ""  # error text for --verbose
    needs_network: bool = False


DEFECTS = [
    (re.compile(r"unknown task '([^']*)'"), "unknown tool '{0}'"),
    (re.compile(r"argument .* fits none of its inputs"), "an extra argument that fits no input"),
    (re.compile(r"lacks its required (\w+) argument"), "a required {0} argument is missing"),
    (re.compile(r"is a URL, and fetching URLs is not enabled"), "a media argument is a URL, not a file"),
    (re.compile(r"needs an? (\w+) file, got"), "a {0} argument names no file"),
    (re.compile(r"is an? (\w+) file but an? (\w+) is needed"), "a {0} file where {1} is needed"),
    (re.compile(r"the file '([^']*)' is not known"), "names a file no example provides"),
    (re.compile(r"expected \w+ as a string, got (\w+)"), "an argument is a {0}, not a string"),
    (re.compile(r"needs (\w+) but task \d+ \(([\w-]+)\) produces"), "{0} taken from {1}, which makes none"),
    (re.compile(r"there is no task \d+|which is not in the plan"), "a reference to a node that does not exist"),
    (re.compile(r"refers to its own output|depends on itself"), "a node refers to itself (<node-k> counted from 1?)"),
    (re.compile(r"several task outputs are named"), "several outputs given for one media input"),
    (re.compile(r"in a cycle"), "nodes depend on each other in a cycle"),
]


def defect_reason(problem: str) -> str:
    for pattern, label in DEFECTS:
        found = pattern.search(problem)
        if found:
            return label.format(*found.groups())
    masked = re.sub(r"'[^']*'", "'…'", problem)
    return re.sub(r"\d+", "N", masked)


def load_records(data: Path, domain: str, limit: int | None) -> list[dict[str, Any]]:
    path = data / f"{domain}.dev.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} does not exist; give the TaskBench folder with --data")
    records = []
    with path.open() as lines:
        for line in lines:
            if line.strip():
                records.append(json.loads(line))
                if limit is not None and len(records) >= limit:
                    break
    return records


def with_text_files(nodes: Any, files: dict[str, Path]) -> Any:
    """The task nodes with each text file's name (example.txt) replaced by its text: baton has no text inputs."""
    texts = {name: path.read_text().strip() for name, path in files.items() if path.suffix == ".txt"}

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            for name, text in texts.items():
                stripped = value.strip().strip("'\"")
                value = text if stripped == name else value.replace(name, f'"{text}"')
            return value
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return swap(nodes)


def mentioned_files(nodes: Any, files: dict[str, Path]) -> list[Path]:
    found: dict[str, Path] = {}

    def walk(value: Any) -> None:
        if isinstance(value, str):
            candidates = [value.strip().strip("'\""), *FILE_TOKEN.findall(value)]
            for token in candidates:
                if token in files and kind_of_filename(token):
                    found[token] = files[token]
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(nodes)
    return list(found.values())


def first_failure(result: Any) -> tuple[str, bool]:
    """'task: error' of the first failed task (skipped ones follow from it) and whether it lacked the network."""
    failed = [t for t in result.run.tasks if t.status == "failed"] or [
        t for t in result.run.tasks if t.status != "succeeded"
    ]
    if not failed:
        return f"run {result.run.status}: {result.run.error or 'no reason given'}", False
    task = failed[0]
    error = task.error or task.status
    return f"{task.task}: {error}", error.startswith(NETWORK_OFF)


def evaluate(
    domain: str, records: list[dict[str, Any]], files: dict[str, Path], home: Path, timeout: float
) -> list[Outcome]:
    from baton.assistant import Assistant
    from baton.catalog import load_catalog
    from baton.config import Settings
    from baton.plan import PlanError, parse_plan, validate
    from baton.select import NoExpert, select
    from baton.store import Store

    catalog = load_catalog()
    known = {name: str(kind_of_filename(name)) for name in files if kind_of_filename(name)}
    settings = Settings(home=home, allow_network=False, allow_private_network=False, task_timeout=timeout, cpu_slots=2)
    assistant = Assistant(settings, store=Store(home), catalog=catalog)
    runnable: dict[str, bool] = {}

    def builtin_for(task: str) -> bool:
        if task not in runnable:
            try:
                card = select(task, catalog, settings=settings).card
                # a downloader has a builtin expert, but with network access off it cannot succeed: the
                # network blocks it, like an LLM or Hub weights block other tasks
                runnable[task] = card.backend == "builtin" and (
                    settings.allow_network or not task.endswith("-downloader")
                )
            except NoExpert:
                runnable[task] = False
        return runnable[task]

    outcomes: list[Outcome] = []
    began = time.monotonic()
    try:
        for number, record in enumerate(records, 1):
            if number % 50 == 0:
                print(f"  {domain}: {number}/{len(records)} plans, {time.monotonic() - began:.0f} s", file=sys.stderr)
            record_id = str(record.get("id", number))
            nodes = with_text_files(record.get("task_nodes", []), files)
            try:
                plan = parse_plan({"task_nodes": nodes})
                valid = validate(plan, known)
            except PlanError as exc:
                reasons = list(dict.fromkeys(defect_reason(p) for p in exc.problems))
                outcomes.append(Outcome(record_id, "defect", reasons, "; ".join(exc.problems)))
                continue
            tasks = [valid.specs[task.id].name for task in plan.tasks]
            blocking = sorted({task for task in tasks if not builtin_for(task)})
            needs_network = any(task.endswith("-downloader") for task in tasks)
            if blocking:
                outcomes.append(Outcome(record_id, "blocked", blocking, needs_network=needs_network))
                continue
            inputs = mentioned_files(nodes, files)
            try:
                result = asyncio.run(assistant.run(str(record.get("instruction", "")), inputs, plan=plan))
            except Exception as exc:  # a bug or a refusal before running: a failure all the same
                outcomes.append(Outcome(record_id, "failed", [], f"run raised {type(exc).__name__}: {exc}"))
                continue
            if result.ok:
                outcomes.append(Outcome(record_id, "succeeded", needs_network=needs_network))
            else:
                detail, offline = first_failure(result)
                outcomes.append(Outcome(record_id, "failed", [], detail, needs_network=offline or needs_network))
    finally:
        assistant.close()
    return outcomes


# report


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def report(domain: str, outcomes: list[Outcome], verbose: bool, seconds: float) -> dict[str, Any]:
    total = len(outcomes)
    defects = [o for o in outcomes if o.status == "defect"]
    valid = [o for o in outcomes if o.status != "defect"]
    covered = [o for o in valid if o.status != "blocked"]
    succeeded = [o for o in covered if o.status == "succeeded"]
    offline = [o for o in covered if not o.needs_network]
    offline_ok = [o for o in offline if o.status == "succeeded"]
    print(f"\n== {domain}: {total} plans, {seconds:.0f} s")
    print(f"gold-label defects (fail to parse/validate): {len(defects)} plans; reasons (a plan may have several):")
    for reason, count in Counter(r for o in defects for r in o.reasons).most_common():
        print(f"  {count:4d}  {reason}")
    print(f"(a) coverage: {len(covered)}/{len(valid)} valid plans have a runnable builtin expert for every task "
          f"({share(len(covered), len(valid)).strip()})")  # fmt: skip
    blockers = Counter(task for o in valid if o.status == "blocked" for task in o.reasons)
    if blockers:
        print("  tasks without a runnable builtin expert (plans blocked):")
        for task, count in blockers.most_common():
            print(f"  {count:4d}  {task}")
    print(f"(b) end to end: {len(succeeded)}/{len(covered)} covered plans ran without error "
          f"({share(len(succeeded), len(covered)).strip()}); without the plans that need a downloader: "
          f"{len(offline_ok)}/{len(offline)} ({share(len(offline_ok), len(offline)).strip()})")  # fmt: skip
    failures = [o for o in covered if o.status == "failed"]
    if failures:
        print("  failures by task (first failing task of each plan):")
        kinds = Counter(o.detail.split(":", 1)[0] if not o.detail.startswith("run ") else "run" for o in failures)
        for task, count in kinds.most_common():
            print(f"  {count:4d}  {task}")
    if verbose:
        if defects:
            print("  defects:")
            for o in defects:
                print(f"    {o.record_id}: {o.detail}")
        if failures:
            print("  failed runs:")
            for o in failures:
                print(f"    {o.record_id}: {o.detail}")
    return {
        "domain": domain,
        "plans": total,
        "defects": len(defects),
        "valid": len(valid),
        "covered": len(covered),
        "succeeded": len(succeeded),
        "offline": len(offline),
        "offline_ok": len(offline_ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", choices=[*DOMAINS, "all"], default="all")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N plans per domain")
    parser.add_argument("--verbose", action="store_true", help="list defects and failures with their errors")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the TaskBench folder")
    parser.add_argument("--task-timeout", type=float, default=120, metavar="S", help="seconds per task")
    args = parser.parse_args()
    domains = DOMAINS if args.domain == "all" else (args.domain,)
    rows = []
    with tempfile.TemporaryDirectory(prefix="baton-taskbench-") as scratch:
        root = Path(scratch)
        home = root / "home"
        os.environ["BATON_HOME"] = str(home)  # anything that reads the environment uses the same scratch home
        examples = root / "examples"
        examples.mkdir()
        files = make_examples(examples)
        print(f"example files: {', '.join(sorted(files))}", file=sys.stderr)
        for domain in domains:
            records = load_records(args.data, domain, args.limit)
            began = time.monotonic()
            outcomes = evaluate(domain, records, files, home, args.task_timeout)
            rows.append(report(domain, outcomes, args.verbose, time.monotonic() - began))
    print()
    head = f"{'domain':<12} {'plans':>6} {'defects':>8} {'valid':>6} {'covered':>8} {'coverage':>9} " \
           f"{'ran ok':>7} {'success':>8} {'offline ok':>11} {'offline':>8}"  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['domain']:<12} {r['plans']:>6} {r['defects']:>8} {r['valid']:>6} {r['covered']:>8} "
            f"{share(r['covered'], r['valid']):>9} {r['succeeded']:>7} {share(r['succeeded'], r['covered']):>8} "
            f"{r['offline_ok']:>5}/{r['offline']:<5} {share(r['offline_ok'], r['offline']):>8}"
        )
    print(
        "\ncoverage = covered / valid plans; success = ran ok / covered; offline = covered plans without a "
        "downloader (network access is off)"
    )


if __name__ == "__main__":
    main()

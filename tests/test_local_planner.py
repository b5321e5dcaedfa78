"""The local planner (learned model + keyword rules): requests and attached files in, valid plans out, no LLM."""

from __future__ import annotations

import pytest

from baton.plan import Plan, validate
from baton.planners import Attachment, Planner, PlannerError
from baton.planners.local import KeywordPlanner, LocalPlanner

SIGN = ("sign.png", "image")
SPEECH = ("speech.wav", "audio")
CLIP = ("clip.mp4", "video")


def plan(request: str, *files: Attachment) -> Plan:
    """Plan a request and check that the plan validates with exactly the attached files known."""
    result = LocalPlanner().plan(request, list(files))
    validate(result, dict(files))
    return result


def steps(result: Plan) -> list[tuple[str, dict, list[int]]]:
    return [(t.task, t.args, t.dep) for t in result.tasks]


def test_local_and_keyword_planners_are_planners() -> None:
    planner: Planner = LocalPlanner()
    assert planner.name == "local"
    keyword: Planner = KeywordPlanner()
    assert keyword.name == "keyword"


def test_read_the_text_in_this_image_aloud() -> None:
    result = plan("read the text in this image aloud", SIGN)
    assert steps(result) == [
        ("image-to-text", {"image": "sign.png"}, []),
        ("text-to-speech", {"text": "<GENERATED>-0"}, [0]),
    ]
    assert [t.id for t in result.tasks] == [0, 1]


def test_what_does_this_audio_say() -> None:
    assert steps(plan("what does this audio say", SPEECH)) == [
        ("automatic-speech-recognition", {"audio": "speech.wav"}, []),
    ]


@pytest.mark.parametrize(
    "request_",
    ["say 'hello world'", 'say "hello world"', "say “hello world”", "Please say 'hello world'."],
)
def test_say_quoted_text(request_: str) -> None:
    assert steps(plan(request_)) == [("text-to-speech", {"text": "hello world"}, [])]


@pytest.mark.parametrize(
    ("request_", "spoken"),
    [
        ("say hello world", "hello world"),
        ("Say hello world!", "hello world"),
        ("can you say hello world?", "hello world"),
        ("say: hello world", "hello world"),
        ("pronounce quinoa", "quinoa"),
    ],
)
def test_say_without_quotes_speaks_the_rest_of_the_request(request_: str, spoken: str) -> None:
    assert steps(plan(request_)) == [("text-to-speech", {"text": spoken}, [])]


@pytest.mark.parametrize(
    ("request_", "spoken"),
    [
        ("say it's a nice day and that's that", "it's a nice day and that's that"),
        ('say "don\'t stop"', "don't stop"),
        ("say 'don't stop'", "don't stop"),
        ("say ‘it’s fine’", "it’s fine"),
    ],
)
def test_apostrophes_are_not_quotes(request_: str, spoken: str) -> None:
    assert steps(plan(request_)) == [("text-to-speech", {"text": spoken}, [])]


def test_quoted_text_after_other_words_is_what_gets_spoken() -> None:
    assert steps(plan("read this aloud: 'good night'")) == [("text-to-speech", {"text": "good night"}, [])]


def test_say_the_text_in_this_image_reads_before_speaking() -> None:
    """'say' comes first in the request, but the speech needs the image's text: OCR runs first."""
    assert steps(plan("Please say the text in this image", SIGN)) == [
        ("image-to-text", {"image": "sign.png"}, []),
        ("text-to-speech", {"text": "<GENERATED>-0"}, [0]),
    ]


@pytest.mark.parametrize("request_", ["", "hmm", "here you go"])
def test_an_image_without_a_recognisable_request_is_read(request_: str) -> None:
    assert steps(plan(request_, SIGN)) == [("image-to-text", {"image": "sign.png"}, [])]


@pytest.mark.parametrize(
    ("attachment", "task", "port"),
    [(SPEECH, "automatic-speech-recognition", "audio"), (CLIP, "video-to-text", "video")],
)
def test_other_media_without_a_request_get_their_default_task(attachment: Attachment, task: str, port: str) -> None:
    assert steps(plan("", attachment)) == [(task, {port: attachment[0]}, [])]


def test_request_needing_an_image_without_one_names_the_fix() -> None:
    with pytest.raises(PlannerError) as caught:
        LocalPlanner().plan("read the text in this image aloud", [])
    message = str(caught.value)
    assert "image-to-text" in message
    assert "needs an image, but none was given" in message
    assert "attach one with -i FILE" in message


def test_request_needing_audio_with_only_an_image_attached() -> None:
    with pytest.raises(PlannerError) as caught:
        LocalPlanner().plan("what does this audio say", [SIGN])
    assert "needs an audio, but none was given; attach one with -i FILE" in str(caught.value)


def test_planner_error_is_a_value_error() -> None:
    assert issubclass(PlannerError, ValueError)


@pytest.mark.parametrize("request_", ["what's the weather like tomorrow?", "hello", "", "sayonara"])
def test_an_unrelated_request_gets_an_empty_plan(request_: str) -> None:
    assert plan(request_) == Plan()


def test_transcribe_then_speak() -> None:
    assert steps(plan("transcribe this recording and read it out loud", SPEECH)) == [
        ("automatic-speech-recognition", {"audio": "speech.wav"}, []),
        ("text-to-speech", {"text": "<GENERATED>-0"}, [0]),
    ]


def test_translate_the_text_in_an_image() -> None:
    assert steps(plan("translate the text in this image", SIGN)) == [
        ("image-to-text", {"image": "sign.png"}, []),
        ("translation", {"text": "<GENERATED>-0"}, [0]),
    ]


def test_the_first_of_several_images_is_used() -> None:
    result = plan("read the text in this image aloud", SIGN, ("other.png", "image"))
    assert result.tasks[0].args == {"image": "sign.png"}


def test_a_task_named_outright_is_found() -> None:
    assert steps(plan("run image-segmentation please", SIGN)) == [("image-segmentation", {"image": "sign.png"}, [])]


def test_generated_image_feeds_the_next_task() -> None:
    result = plan("generate an image of a cat and read the text in it aloud")
    assert [t.task for t in result.tasks] == ["text-to-image", "image-to-text", "text-to-speech"]
    assert result.tasks[1].args == {"image": "<GENERATED>-0"} and result.tasks[1].dep == [0]
    assert result.tasks[2].args == {"text": "<GENERATED>-1"} and result.tasks[2].dep == [1]


@pytest.mark.parametrize(
    ("request_", "files"),
    [
        ("read the text in this image aloud", [SIGN]),
        ("what does this image say, aloud", [SIGN]),
        ("describe this photo", [SIGN]),
        ("ocr this scan and summarize it", [SIGN]),
        ("what's the sentiment of the text in this picture?", [SIGN]),
        ("detect the objects and estimate depth", [SIGN]),
        ("remove the background", [SIGN]),
        ("transcribe this and translate it", [SPEECH]),
        ("what did the speaker say? say it back to me", [SPEECH]),
        ("extract the keywords from 'the quick brown fox'", []),
        ("summarize 'a long story about a fox and a dog'", []),
        ("say 'one' and then read the text in this image aloud", [SIGN]),
        ("read the text in both images", [SIGN, ("other.png", "image")]),
        ("hello there", [SIGN, SPEECH, CLIP]),
    ],
)
def test_every_plan_validates_with_the_attached_files(request_: str, files: list[Attachment]) -> None:
    result = plan(request_, *files)  # plan() validates
    assert result.tasks
    assert [t.id for t in result.tasks] == list(range(len(result.tasks)))
    for task in result.tasks:
        assert all(dep < task.id for dep in task.dep), "dependencies come before the task that needs them"


@pytest.mark.parametrize(
    ("request_", "attachment", "first"),
    [
        ("summarize this recording", ("talk.wav", "audio"), ("automatic-speech-recognition", {"audio": "talk.wav"})),
        ("translate this", ("menu.png", "image"), ("image-to-text", {"image": "menu.png"})),
        ("what is the sentiment here", ("clip.mp4", "video"), ("video-to-text", {"video": "clip.mp4"})),
    ],
)
def test_an_attached_file_no_task_reads_becomes_the_text_to_work_on(
    request_: str, attachment: Attachment, first: tuple[str, dict]
) -> None:
    result = steps(plan(request_, attachment))
    assert result[0] == (*first, [])
    assert len(result) == 2
    assert result[1][1] == {"text": "<GENERATED>-0"} and result[1][2] == [0]


def test_explicit_text_wins_over_an_unread_attachment() -> None:
    assert steps(plan("say hi", ("sign.png", "image"))) == [("text-to-speech", {"text": "hi"}, [])]
    assert steps(plan("translate 'bonjour'", ("sign.png", "image"))) == [("translation", {"text": "bonjour"}, [])]


# the learned model behind the local planner


def test_a_taskbench_style_request_plans_its_chain() -> None:
    request = (
        "I have an old black and white photo. Could you add colour to it, then describe what is in the "
        "colourized picture, and finally read that description aloud?"
    )
    result = plan(request, SIGN)
    assert [t.task for t in result.tasks] == ["image-colorization", "image-to-text", "text-to-speech"]
    assert result.tasks[0].args == {"image": "sign.png"}
    assert [t.dep for t in result.tasks] == [[], [0], [1]]


def test_confidence_is_a_probability_and_higher_for_clear_requests() -> None:
    planner = LocalPlanner()
    _, clear = planner.plan_with_confidence("read the text in this image aloud", [SIGN])
    _, vague = planner.plan_with_confidence("do something interesting with this, maybe", [SIGN])
    assert 0 <= vague < clear <= 1


def test_a_task_taskbench_does_not_know_is_planned_by_the_keyword_rules() -> None:
    assert steps(plan("remove the background", SIGN)) == [("background-removal", {"image": "sign.png"}, [])]


def test_session_files_named_in_the_request_are_used() -> None:
    from baton.planners import PlanContext

    context = PlanContext(known={"image/3f9c2a1b.png": "image", "sign.png": "image"})
    result = LocalPlanner().plan("read sign.png aloud", [], context)
    assert result.tasks[0].args == {"image": "sign.png"}


@pytest.mark.parametrize("domain", ["huggingface", "multimedia"])
def test_plans_of_taskbench_requests_validate_or_say_what_is_missing(domain: str) -> None:
    """The first 150 dev requests, with the files they name attached: every plan validates."""
    import json

    from baton.planners.model import FILE_NAME, media_kind
    from baton.taskbench import data_dir

    path = data_dir() / f"{domain}.dev.jsonl"
    if not path.exists():
        pytest.skip(f"TaskBench data not found at {path}")
    planner = LocalPlanner()
    planned = 0
    for line in path.read_text(encoding="utf-8").splitlines()[:150]:
        request = json.loads(line)["instruction"]
        files = {name: kind for name in FILE_NAME.findall(request) if (kind := media_kind(name))}
        try:
            result = planner.plan(request, list(files.items()))
        except PlannerError as exc:
            assert "give it in the request" in str(exc) or "attach one with -i FILE" in str(exc)
            continue
        validate(result, files)
        planned += bool(result.tasks)
    assert planned >= 120


def test_given_tools_are_ordered_by_the_request_and_linked_by_type() -> None:
    from baton.planners.model import load_model

    model = load_model("multimedia")
    request = "Please transcribe example.wav, then summarize what was said and translate the summary into French."
    nodes = model.arrange(request, ["Text Translator", "Audio-to-Text", "Text Summarizer"])
    assert [n.tool for n in nodes] == ["Audio-to-Text", "Text Summarizer", "Text Translator"]
    assert [n.args for n in nodes] == [["example.wav"], ["<node-0>"], ["<node-1>"]]
    kept = model.arrange(request, ["Text Translator", "Audio-to-Text"], keep_order=True)
    assert [n.tool for n in kept] == ["Text Translator", "Audio-to-Text"]
    with pytest.raises(ValueError, match="not in the multimedia tool list: Teleporter"):
        model.arrange(request, ["Teleporter"])

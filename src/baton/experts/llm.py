"""Text experts served by the configured LLM, as HuggingGPT used ChatGPT for language tasks.

They are in the catalogue always, and runnable whenever an LLM is configured.
"""

from __future__ import annotations

from collections.abc import Callable

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import Resource

__all__ = ["INSTRUCTIONS", "LLMTextExpert", "register"]

INSTRUCTIONS: dict[str, str] = {
    "summarization": "Summarize the text below in a few sentences, keeping its main points.",
    "translation": "Translate the text below into {target}.",
    "conversational": "Reply to the message below as a helpful assistant.",
    "text-generation": "Continue or complete the text below.",
    "text2text-generation": "Carry out the instruction contained in the text below.",
    "question-answering": "Answer the question using only the context. If the context does not contain the "
    "answer, say so.\n\nQuestion: {question}",
    "grammar-check": "Correct the grammar and spelling of the text below; after the corrected text, list the "
    "corrections made.",
    "text-simplifier": "Rewrite the text below in simpler, plain words.",
    "text-expander": "Expand the short text below into a more detailed and descriptive version.",
    "paraphrase": "Paraphrase the text below with different words and the same meaning.",
    "keyword-extraction": "List the most important keywords and key phrases of the text below, comma-separated.",
    "topic-generator": "Suggest a short list of relevant topics or ideas based on the text below, one per line.",
    "article-spinner": "Rewrite the article below with synonyms and new sentence structure into a unique version "
    "with the same meaning.",
}


class LLMTextExpert(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        from baton.llm import LLMError
        from baton.prompts import render

        llm = ctx.llm
        if llm is None:
            raise ExpertError("no LLM is configured: set BATON_LLM_MODEL and OPENAI_BASE_URL (or OPENAI_API_KEY)")
        task = self.card.task
        text = (inputs.get("context") or inputs.get("text") or Resource.text("")).as_text().strip()
        if not text:
            raise ExpertError(f"{task} got an empty text; give it something to work on")
        target = (inputs.get("target") or Resource.text("English")).as_text().strip() or "English"
        question = inputs["question"].as_text() if "question" in inputs else ""
        instruction = INSTRUCTIONS[task].replace("{target}", target).replace("{question}", question)
        prompt = render("text_task.txt", instruction=instruction, text=text)
        try:
            reply = llm.chat([{"role": "user", "content": prompt}], stage="task", usage=ctx.usage)
        except LLMError as exc:
            raise ExpertError(str(exc)) from None
        if not reply.content.strip():
            raise ExpertError(f"the LLM returned an empty {task} result")
        return {"text": Resource.text(reply.content.strip())}


def register(add: Callable[[ModelCard], None]) -> None:
    """Entry point of the ``baton.experts`` group for the LLM-served text experts."""
    for task in INSTRUCTIONS:
        add(
            ModelCard(
                id=f"llm/{task}",
                task=task,
                backend="llm",
                description=f"{task} by the configured LLM (OpenAI-compatible endpoint).",
                factory="baton.experts.llm:LLMTextExpert",
                python=("openai",),
                extra="llm",
            )
        )

"""Answer checks for the labelled questions: ``rubric(question, answer, chunks) -> bool``."""


def not_a_refusal(question: dict, answer: str, chunks: list[str]) -> bool:
    return not answer.startswith("I do not have information")


def grounded_in_a_relevant_chunk(question: dict, answer: str, chunks: list[str]) -> bool:
    return bool(set(chunks) & set(question.get("relevant", [])))

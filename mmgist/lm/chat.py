"""Chat formatting with the text tokenizer's own template, as the pieces a gist needs: a system turn
(the prefix) and user turns (the queries).

    prefix = system_turn(vocab, "You are Captain Mira Okafor, ...")  # '<|im_start|>system\\n...<|im_end|>\\n'
    query = user_turn(vocab, "When does the harbour open?")
    # query == '<|im_start|>user\\nWhen does the harbour open?<|im_end|>\\n<|im_start|>assistant\\n'
    distill_gist(model, vocab, prefix, queries=[query, ...])
    generate(model, vocab, prefix + query)    # the template applied to [system, user], as the model was tuned
    generate(model, vocab, query, gist=gist)  # the same question after the gist

Both come from rendering the template (`apply_chat_template`), so `system_turn(s) + user_turn(u)` is
exactly the template's rendering of the two messages with the assistant's opening; a template that
does not render a conversation that way (one that folds the system message into the first user turn,
say) is refused rather than approximated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..validate import show
from .scoring import context_ids

if TYPE_CHECKING:
    from ..vocab import SharedVocabulary

_PROBE = "x"  # a stand-in system message, to cut the user turn out of a rendered conversation


def template_tokenizer(vocab: SharedVocabulary) -> Any:
    """The Hugging Face tokenizer behind `vocab`'s text part, which must have a chat template."""
    if not callable(getattr(vocab, "tokenizer", None)):
        raise TypeError(
            f"chat formatting needs the SharedVocabulary (of a pretrained LM with a chat template) first, got "
            f"{show(vocab)} ({type(vocab).__name__}); call it as system_turn(vocab, text)"
        )
    text = vocab.tokenizer("text")
    hf = getattr(text, "hf", None)
    if hf is None or not getattr(hf, "chat_template", None):
        raise ValueError(
            f"chat formatting needs a text tokenizer with a chat template (an instruct model's hf-text); "
            f"this vocabulary's text tokenizer is {text.name!r}" + ("" if hf is None else " without a template")
        )
    return hf


def _render(vocab: SharedVocabulary, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    hf = template_tokenizer(vocab)
    return hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


def system_turn(vocab: SharedVocabulary, system: str) -> str:
    """The template's system turn holding `system`, as text (the prefix of every conversation with it)."""
    rendered = _render(vocab, [{"role": "system", "content": _text(system, "the system message")}], False)
    if system not in rendered:
        raise ValueError(
            f"this chat template does not render a system message as a turn of its own (a lone system message "
            f"renders as {rendered[:80]!r}); a gist needs the system turn as a prefix of its own"
        )
    return rendered


def user_turn(vocab: SharedVocabulary, message: str) -> str:
    """A user turn holding `message` and the assistant's opening, as text: what follows the system turn."""
    message = _text(message, "the user message")
    head = system_turn(vocab, _PROBE)
    whole = _render(vocab, [{"role": "system", "content": _PROBE}, {"role": "user", "content": message}], True)
    if not whole.startswith(head):
        raise ValueError(
            "this chat template does not render a conversation as its system turn followed by the user turn "
            f"(rendered {whole[:80]!r}, whose start is not the system turn {head[:80]!r}); a gist needs the system "
            "turn as a prefix of its own"
        )
    return whole[len(head) :]


def system_span(vocab: SharedVocabulary, system: str) -> tuple[list[int], tuple[int, int], list[str]]:
    """(ids, (start, end), pieces): <|bos|> + the ids of `system_turn(vocab, system)`, the range of ids that
    holds the message itself (the template's role header and end of turn left out), and each id's text in
    the rendered turn ("" for <|bos|>). What reconstruction rows and chunked questions cut the prefix by."""
    hf = template_tokenizer(vocab)
    rendered = system_turn(vocab, system)
    ids = context_ids(vocab, rendered)
    enc = hf(rendered, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != ids[1:]:
        raise ValueError("the text tokenizer's ids of the system turn differ from the vocabulary's: cannot map them")
    begin = rendered.index(system)
    pieces = [""] + [rendered[a:b] for a, b in enc["offset_mapping"]]
    inside = [n + 1 for n, (a, b) in enumerate(enc["offset_mapping"]) if a >= begin and b <= begin + len(system)]
    if not inside:
        raise ValueError(f"the system message {system[:40]!r} holds no token of its own in the rendered turn")
    return ids, (inside[0], inside[-1] + 1), pieces

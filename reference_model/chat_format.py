"""The Llama 3 chat format (meta-llama/llama-models models/llama3/chat_format.py), as token ids.

``<|begin_of_text|>`` then, per message, ``<|start_header_id|>ROLE<|end_header_id|>\\n\\n``,
the content stripped, and ``<|eot_id|>``; role ``tool`` is rendered ``ipython``; the generation
prompt is the assistant header. Text between special tokens is encoded as one piece, the way a
HF tokenizer encodes the string that ``CHAT_TEMPLATE`` renders, so the counts agree with
``apply_chat_template(..., tokenize=True)``. Tools (an approximation of Llama 3.1's JSON tool
calling): their JSON definitions are appended to the system message (one is created if absent),
and an assistant ``tool_calls`` entry is rendered as ``{"name": ..., "parameters": ...}`` JSON
(:func:`tool_call_text`; consecutive calls one after another, no separator). The same layout
is what the reference model writes for a forced call (``reference_model.generate``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .tokenizer import Tokenizer

__all__ = [
    "CHAT_TEMPLATE",
    "TOOLS_PREAMBLE",
    "encode_dialog",
    "render_dialog",
    "tool_call_frame",
    "tool_call_text",
]

TOOLS_PREAMBLE = "You have access to the following functions. To call one, reply with JSON.\n"
# One tool call as text: _CALL_NAME + the name as JSON + _CALL_ARGUMENTS + arguments + _CALL_END.
_CALL_NAME, _CALL_ARGUMENTS, _CALL_END = '{"name": ', ', "parameters": ', "}"

# The same rendering as a Jinja chat template for HF tokenizer_config.json / GGUF metadata.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- set ns = namespace(system='') %}"
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{%- set ns.system = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}"
    "{%- endif %}"
    "{%- if tools %}"
    "{%- set ns.system = ns.system + ('\\n\\n' if ns.system else '') + '"
    + TOOLS_PREAMBLE.replace("\n", "\\n")
    + "' %}"
    "{%- for t in tools %}{%- set ns.system = ns.system + (t | tojson) + '\\n' %}{%- endfor %}"
    "{%- set ns.system = ns.system | trim %}"
    "{%- endif %}"
    "{%- if ns.system or tools %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + ns.system + '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- set role = 'ipython' if message['role'] == 'tool' else message['role'] %}"
    "{{- '<|start_header_id|>' + role + '<|end_header_id|>\\n\\n' }}"
    "{%- if message.get('tool_calls') %}"
    "{%- for call in message['tool_calls'] %}"
    "{%- set f = call['function'] if 'function' in call else call %}"
    "{%- set args = f['arguments'] if f['arguments'] is string else f['arguments'] | tojson %}"
    "{{- '"
    + _CALL_NAME
    + "' + f['name'] | tojson + '"
    + _CALL_ARGUMENTS
    + "' + args + '"
    + _CALL_END
    + "' }}"
    "{%- endfor %}"
    "{%- else %}"
    "{{- (message['content'] or '') | trim }}"
    "{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def tool_call_frame(name: str) -> tuple[str, str]:
    """The text before and after the arguments of a call of function ``name``:
    ``('{"name": "NAME", "parameters": ', '}')`` (the name as JSON, non-ASCII kept)."""
    return _CALL_NAME + json.dumps(name, ensure_ascii=False) + _CALL_ARGUMENTS, _CALL_END


def tool_call_text(name: str, arguments: str) -> str:
    """One call as the chat format writes it: ``{"name": "NAME", "parameters": ARGUMENTS}``
    (``arguments``: JSON text, as it is)."""
    head, tail = tool_call_frame(name)
    return head + arguments + tail


def _tool_calls_text(calls: Sequence[Mapping[str, Any]]) -> str:
    out = ""
    for call in calls:
        f = call.get("function", call)
        args = f["arguments"]
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        out += tool_call_text(f["name"], args)
    return out


def render_dialog(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = True,
) -> list[str | None]:
    """Pieces of the prompt: text strings, and ``None`` before each special token's name.

    Returned as alternating plain strings; a special token is the string right after a
    ``None`` marker. ``encode_dialog`` turns this into ids.
    """
    pieces: list[str | None] = [None, "<|begin_of_text|>"]

    def turn(role: str, text: str) -> None:
        pieces.extend([None, "<|start_header_id|>", role, None, "<|end_header_id|>"])
        pieces.extend(["\n\n" + text, None, "<|eot_id|>"])

    messages = list(messages)
    system = ""
    if messages and messages[0]["role"] == "system":
        system = _content(messages[0]).strip()
        messages = messages[1:]
    if tools:
        system += ("\n\n" if system else "") + TOOLS_PREAMBLE
        system += "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tools)
        system = system.strip()
    if system or tools:
        turn("system", system)
    for m in messages:
        role = "ipython" if m["role"] == "tool" else m["role"]
        calls = m.get("tool_calls")
        turn(role, _tool_calls_text(calls) if calls else _content(m).strip())
    if add_generation_prompt:
        pieces.extend([None, "<|start_header_id|>", "assistant", None, "<|end_header_id|>"])
        pieces.append("\n\n")
    return pieces


def encode_dialog(
    tokenizer: Tokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = True,
) -> list[int]:
    """Prompt token ids of a chat; user text is never parsed for special tokens."""
    ids: list[int] = []
    text = ""
    pieces = render_dialog(messages, tools, add_generation_prompt=add_generation_prompt)
    it = iter(pieces)
    for p in it:
        if p is None:
            ids += tokenizer.encode(text)
            text = ""
            ids.append(tokenizer.special_ids[str(next(it))])
        else:
            text += p
    return ids + tokenizer.encode(text)

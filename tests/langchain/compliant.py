"""A scripted model that follows the tool-calling and JSON convention, as a compliant model.

``compliant_answer`` is a responder for the scripted engine (``ScriptedEngine(responder=...)``):
it reads the SteerLM prompt it is sent (the tools, the ``tool_choice`` rule or the JSON
schema in the system turn, and the last user turn) and answers with the call or JSON they
ask for. LangChain's own standard tests then check our conversions end to end, over HTTP.

It only reads the prompt's text: nothing is shared with the adapter but the convention of
``steerlm.tools``. Where a real model would have to think, the answers are choices made
here, marked ``CHOICE`` below: a test that passes on them shows the conversion works, not
that any model would pick the same values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

_SYSTEM = re.compile(r"\A<extra_id_0>System\n(.*?)\n<extra_id_1>", re.DOTALL)
_LAST_USER = re.compile(r".*<extra_id_1>User\n(.*?)\n<extra_id_1>Assistant\n", re.DOTALL)
_TOOLS = re.compile(r"You can call these tools:\n(.*?)\nTo call a tool, ", re.DOTALL)
_NAMED = re.compile(r"You must call the tool (.+?)\.$", re.MULTILINE)
_REQUIRED = "You must call at least one tool before answering."
_SCHEMA = re.compile(r"Answer with one JSON value that matches this JSON schema, .*?:\n(.*)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")
# A run of capitalised words, e.g. "San Francisco, CA" or "Pirate".
_PROPER = re.compile(r"[A-Z][\w.]*(?:,?\s+[A-Z][\w.]*)*")

#: CHOICE: the answer to a question that asks for no tool and no JSON.
PLAIN_ANSWER = "Hello! I am a compliant scripted model."


def compliant_answer(prompt: str) -> str:
    """The answer a model that follows the prompt's instructions would write."""
    system_match = _SYSTEM.search(prompt)
    user_match = _LAST_USER.match(prompt)
    system = system_match.group(1) if system_match else ""
    question = user_match.group(1) if user_match else ""
    if question.startswith("<tool_result"):
        # CHOICE: after a tool result, answer in words with the result.
        result = question.split("\n", 1)[-1].rsplit("\n</tool_result>", 1)[0]
        return f"The tool answered: {result}"
    tools = _tools(system)
    tool = _chosen_tool(system, tools, question)
    if tool is not None:
        call = {"name": tool["name"], "arguments": _value(tool["parameters"], question)}
        return "<tool_call>" + json.dumps(call, ensure_ascii=False) + "</tool_call>"
    schema = _SCHEMA.search(system)
    if schema:
        return json.dumps(_value(json.loads(schema.group(1)), question), ensure_ascii=False)
    return PLAIN_ANSWER


def _tools(system: str) -> list[dict[str, Any]]:
    match = _TOOLS.search(system)
    return [json.loads(line) for line in match.group(1).splitlines()] if match else []


def _chosen_tool(system: str, tools: list[dict[str, Any]], question: str) -> dict[str, Any] | None:
    if not tools:
        return None
    named = _NAMED.search(system)
    if named:
        return next(tool for tool in tools if tool["name"] == named.group(1))
    words = {w.lower() for w in re.findall(r"\w+", question)}
    for tool in tools:
        # CHOICE: with tool_choice "auto", call a tool whose name, or a word of its name
        # (4 letters or more), is in the question: "magic_function", "get_weather".
        parts = {p.lower() for p in tool["name"].split("_") if len(p) >= 4}
        if tool["name"] in question or parts & words:
            return tool
    return tools[0] if _REQUIRED in system else None


def _value(schema: Mapping[str, Any], question: str, name: str = "") -> Any:
    """A value of ``schema`` drawn from the question (CHOICE: see each type)."""
    return _Filler(question).value(schema, name)


class _Filler:
    def __init__(self, question: str) -> None:
        self.question = question
        self.numbers: Iterator[str] = iter(_NUMBER.findall(question))

    def value(self, schema: Mapping[str, Any], name: str) -> Any:
        if "anyOf" in schema:  # optional fields: the first form that is not null
            options = [o for o in schema["anyOf"] if o.get("type") != "null"]
            return self.value(options[0] if options else {"type": "null"}, name)
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type", "object")
        if kind == "object":
            properties: Mapping[str, Any] = schema.get("properties", {})
            return {key: self.value(sub, key) for key, sub in properties.items()}
        if kind in ("integer", "number"):
            # CHOICE: numbers of the question, in order ("magic_function(3)" -> 3).
            number = next(self.numbers, "0")
            return int(float(number)) if kind == "integer" else float(number)
        if kind == "string":
            return self.text(name)
        if kind == "boolean":
            return True
        if kind == "array":
            return []
        return None

    def text(self, name: str) -> str:
        # CHOICE: a quoted text of the question ("'你好啊集团'"), else its first run of
        # capitalised words after the first word ("San Francisco, CA", "Pirate"), else the
        # field's name and the question.
        quoted = _QUOTED.search(self.question)
        if quoted:
            return quoted.group(1) or quoted.group(2)
        first_word_end = len(self.question.split(" ", 1)[0])
        proper = _PROPER.search(self.question, first_word_end)
        if proper:
            return proper.group(0)
        return f"{name}: {self.question}" if name else self.question

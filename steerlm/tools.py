"""Tool calling and JSON answers through the prompt: one convention, one parser.

SteerLM models have no native tool-calling API. Tools are described in the system turn,
and the model is asked to write each call on its own line as::

    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>

Text outside the calls stays the answer's content. Tool results come back to the model
as a user turn holding ``<tool_result name="...">...</tool_result>``. The parser never
raises on a sloppy answer: a call it cannot use becomes an :class:`InvalidToolCall` that
says why.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steerlm.errors import SteerLMInputError

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

# A closed call, or an unclosed one at the very end (the model stopped after writing it).
_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_NAME_HINT = re.compile(r'"name"\s*:\s*"([^"]+)"')
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)

#: Deepest JSON nesting read from an answer. Real tool arguments and structured answers
#: stay far below it; deeper is a degenerate answer, refused before the decoder recurses.
MAX_JSON_DEPTH = 100
_DECODER = json.JSONDecoder()

#: tool_choice values besides a tool's name.
AUTO, REQUIRED, NONE = "auto", "required", "none"


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call.

    Args:
        name: The tool's name.
        description: What the tool does, for the model.
        parameters: JSON schema of the arguments (an object schema).
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})

    @classmethod
    def from_openai(cls, tool: Mapping[str, Any]) -> ToolSpec:
        """Build a spec from an OpenAI-style ``{"type": "function", "function": {...}}``."""
        function = tool.get("function", tool)
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise SteerLMInputError(f"A tool needs a name: got {dict(tool)!r}.")
        return cls(
            name=function["name"],
            description=str(function.get("description") or ""),
            parameters=function.get("parameters") or {"type": "object", "properties": {}},
        )


@dataclass(frozen=True)
class ToolCall:
    """A parsed, validated call: ``arguments`` matched the tool's schema."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class InvalidToolCall:
    """A call the model wrote that cannot be used, and why."""

    id: str
    name: str | None
    arguments: str
    error: str


@dataclass(frozen=True)
class ParsedAnswer:
    """An answer split into its text and its tool calls."""

    content: str
    tool_calls: list[ToolCall]
    invalid_tool_calls: list[InvalidToolCall]


def normalize_tool_choice(choice: str | None, tools: Sequence[ToolSpec]) -> str:
    """Map ``None``/``"auto"``, ``"any"``/``"required"``, ``"none"`` or a tool name.

    Raises:
        SteerLMInputError: A name that is not one of ``tools``.
    """
    if choice is None or choice == AUTO:
        return AUTO
    if choice in ("any", REQUIRED):
        return REQUIRED
    if choice == NONE:
        return NONE
    names = [tool.name for tool in tools]
    if choice not in names:
        raise SteerLMInputError(
            f"tool_choice {choice!r} is not a bound tool. Use 'auto', 'any', 'required', "
            f"'none' or one of: {', '.join(names) or '(no tools bound)'}."
        )
    return choice


def tool_instructions(tools: Sequence[ToolSpec], tool_choice: str = AUTO) -> str:
    """The text added to the system turn so the model knows the tools and the convention."""
    described = "\n".join(
        json.dumps(
            {"name": t.name, "description": t.description, "parameters": t.parameters},
            ensure_ascii=False,
        )
        for t in tools
    )
    rule = {
        AUTO: "Call a tool only when it helps; otherwise answer directly.",
        REQUIRED: "You must call at least one tool before answering.",
    }.get(tool_choice, f"You must call the tool {tool_choice}.")
    return (
        f"You can call these tools:\n{described}\n"
        "To call a tool, write one line per call, exactly like this:\n"
        f'{TOOL_CALL_OPEN}{{"name": "<tool name>", "arguments": {{<arguments as JSON>}}}}'
        f"{TOOL_CALL_CLOSE}\n"
        "Write nothing after your calls. The results come back in <tool_result> messages; "
        f"then answer the user. {rule}"
    )


def json_instructions(schema: Mapping[str, Any]) -> str:
    """The text added to the system turn to ask for one JSON value matching ``schema``."""
    return (
        "Answer with one JSON value that matches this JSON schema, and nothing else:\n"
        + json.dumps(schema, ensure_ascii=False)
    )


def format_tool_calls(calls: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """Render ``(name, arguments)`` calls the way the model was told to write them."""
    return "\n".join(
        f"{TOOL_CALL_OPEN}"
        + json.dumps({"name": name, "arguments": dict(arguments)}, ensure_ascii=False)
        + TOOL_CALL_CLOSE
        for name, arguments in calls
    )


def format_tool_result(name: str | None, content: str) -> str:
    """Render a tool's result as the text of the user turn that brings it back."""
    label = f' name="{name}"' if name else ""
    return f"<tool_result{label}>\n{content}\n</tool_result>"


def new_call_id() -> str:
    """A fresh id for a parsed tool call."""
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> ParsedAnswer:
    """Split ``text`` into content and tool calls; never raises on what the model wrote.

    Each ``<tool_call>`` must hold a JSON object ``{"name": ..., "arguments": {...}}``
    naming a known tool with arguments that match its schema; anything else becomes an
    :class:`InvalidToolCall` with the reason.
    """
    by_name = {tool.name: tool for tool in tools}
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for match in _CALL.finditer(text):
        body = match.group(1).strip()
        call_id = new_call_id()
        try:
            payload = loads_json(body)
        except ValueError as exc:
            hint = _NAME_HINT.search(body)
            error = f"the call is not valid JSON ({exc})"
            invalid.append(InvalidToolCall(call_id, hint.group(1) if hint else None, body, error))
            continue
        name = payload.get("name") if isinstance(payload, dict) else None
        arguments = payload.get("arguments", {}) if isinstance(payload, dict) else None
        if not isinstance(name, str) or not isinstance(arguments, dict):
            error = 'a call must be {"name": "<tool>", "arguments": {...}}'
            invalid.append(
                InvalidToolCall(call_id, name if isinstance(name, str) else None, body, error)
            )
            continue
        tool = by_name.get(name)
        problem = (
            f"unknown tool {name!r}; the tools are: {', '.join(by_name) or '(none)'}"
            if tool is None
            else schema_problem(arguments, tool.parameters)
        )
        if problem:
            invalid.append(InvalidToolCall(call_id, name, json.dumps(arguments), problem))
        else:
            calls.append(ToolCall(call_id, name, arguments))
    content = _CALL.sub("", text).strip()
    return ParsedAnswer(content=content, tool_calls=calls, invalid_tool_calls=invalid)


def tool_call_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """The JSON schema of one call of one of ``tools``: ``{"name", "arguments"}``.

    A server that constrains decoding to it (a forced tool call) answers with the bare
    call object, which :meth:`steerlm.pipeline.CallPipeline.parse` reads as a call.
    """
    variants, definitions = [], {}
    for index, tool in enumerate(tools):
        # A "$ref": "#/$defs/X" of the arguments points at the root of the whole schema:
        # their definitions move there, named per tool so that two tools cannot collide.
        prefix = f"{index}_" if len(tools) > 1 else ""
        arguments = _renamed_refs(dict(tool.parameters) or {"type": "object"}, prefix)
        for key in ("$defs", "definitions"):
            for name, definition in (arguments.pop(key, None) or {}).items():
                definitions[prefix + name] = definition
        variants.append(
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": [tool.name]},
                    "arguments": arguments,
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return {**schema, "$defs": definitions} if definitions else schema


def _renamed_refs(value: Any, prefix: str) -> Any:
    """``value`` with every local ``$ref`` pointing at ``#/$defs/<prefix><name>``."""
    if isinstance(value, dict):
        renamed = {key: _renamed_refs(item, prefix) for key, item in value.items()}
        ref = renamed.get("$ref")
        for root in ("#/$defs/", "#/definitions/"):
            if isinstance(ref, str) and ref.startswith(root):
                renamed["$ref"] = "#/$defs/" + prefix + ref[len(root) :]
        return renamed
    if isinstance(value, list):
        return [_renamed_refs(item, prefix) for item in value]
    return value


class ToolTextGate:
    """Lets through the streamed text of an answer that may hold tool calls, as it comes.

    What is shown is always a prefix of the content :func:`parse_tool_calls` gives for
    the whole answer: everything from the first ``<tool_call>`` on is held back, and so
    is text that could still become one, and whitespace at either end (the content is
    stripped), until what follows settles it.
    """

    def __init__(self) -> None:
        self.text = ""
        self.shown = ""

    def feed(self, delta: str) -> str:
        """Add streamed text; returns the text newly safe to show ("" if none)."""
        self.text += delta
        start = self.text.find(TOOL_CALL_OPEN)
        safe = self.text if start < 0 else self.text[:start]
        if start < 0:  # hold back a tail that could still become "<tool_call>"
            for size in range(min(len(TOOL_CALL_OPEN) - 1, len(safe)), 0, -1):
                if safe.endswith(TOOL_CALL_OPEN[:size]):
                    safe = safe[:-size]
                    break
        safe = safe.strip()  # grows only by appending, as the text does
        if len(safe) <= len(self.shown) or not safe.startswith(self.shown):
            return ""
        new, self.shown = safe[len(self.shown) :], safe
        return new

    def rest(self, content: str) -> str:
        """The rest of the parsed ``content`` after what was shown."""
        return content[len(self.shown) :] if content.startswith(self.shown) else ""


def extract_json(text: str) -> Any:
    """The JSON value in an answer, even wrapped in prose or a code fence.

    Raises:
        ValueError: No JSON value could be read; the message says what came back.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    too_deep = False
    for candidate in candidates:
        stripped = candidate.strip()
        position = 0
        while position < len(stripped):
            char = stripped[position]
            if char not in "{[":
                position += 1
                continue
            deepest, end = _json_extent(stripped, position)
            if deepest > MAX_JSON_DEPTH:
                too_deep = True
                position = end  # nothing inside a degenerate value is the answer
                continue
            try:
                return _DECODER.raw_decode(stripped, position)[0]
            except ValueError:
                position += 1
    if too_deep:
        raise ValueError(
            f"the answer's JSON is nested more than {MAX_JSON_DEPTH} levels deep: {text[:200]!r}"
        )
    raise ValueError(f"the answer holds no JSON object or array: {text[:200]!r}")


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses values nested deeper than :data:`MAX_JSON_DEPTH`.

    A degenerate answer (``[[[[...`` until ``max_tokens``) would otherwise raise
    ``RecursionError`` in the decoder, or later in whatever walks the value.

    Raises:
        ValueError: Not JSON, or nested too deeply.
    """
    if _json_extent(text, 0)[0] > MAX_JSON_DEPTH:
        raise ValueError(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    return json.loads(text)


def _json_extent(text: str, start: int) -> tuple[int, int]:
    """Deepest ``[``/``{`` nesting of the value at ``start``, and the index after it.

    Counts brackets outside strings, without recursion, until the value closes (or the
    text ends: the index is then ``len(text)``).
    """
    depth = deepest = 0
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
            if depth <= 0:
                return deepest, index + 1
    return deepest, len(text)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def schema_problem(value: Any, schema: Mapping[str, Any], path: str = "arguments") -> str | None:
    """Check ``value`` against the common subset of JSON schema that tool schemas use.

    Covers ``type`` (or a list of types), ``enum``, ``properties``, ``required``,
    ``additionalProperties: false``, ``items`` and ``anyOf``. Returns the first problem
    found, or None.
    """
    if "anyOf" in schema:
        options = schema["anyOf"]
        if all(schema_problem(value, option, path) for option in options):
            return f"{path} matches none of the allowed forms"
    expected = schema.get("type")
    if expected is not None:
        types = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, t) for t in types):
            return f"{path} must be {' or '.join(types)}, got {json.dumps(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path} must be one of {json.dumps(schema['enum'])}, got {json.dumps(value)}"
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        missing = [key for key in schema.get("required", []) if key not in value]
        if missing:
            return f"{path} lacks required {', '.join(map(repr, missing))}"
        if schema.get("additionalProperties") is False:
            extra = [key for key in value if key not in properties]
            if extra:
                return f"{path} has unknown {', '.join(map(repr, extra))}"
        for key, item in value.items():
            if key in properties:
                problem = schema_problem(item, properties[key], f"{path}.{key}")
                if problem:
                    return problem
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problem = schema_problem(item, schema["items"], f"{path}[{index}]")
            if problem:
                return problem
    return None


def _is_type(value: Any, json_type: str) -> bool:
    if json_type in ("integer", "number") and isinstance(value, bool):
        return False
    if json_type == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(json_type, (object,)))

"""Request validation: the compatible request schema, then the rules a schema cannot say.

Every problem becomes an :class:`ApiError` with status 400 (404 for an unknown model), the
offending parameter in ``param`` and a message that names it. The rules that shape an answer
(and the context length, which each answer source counts its own way) are
``chatcompat.request_rules``'.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema_rs
from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from chatcompat import schemas
from mockserver._body import json_path, parse_json
from mockserver._config import MockConfig
from mockserver._errors import ApiError
from mockserver._lenient import INT64, VOCAB_SIZE, answerable, repaired
from mockserver._schema_limits import schema_problem

__all__ = ["VOCAB_SIZE", "compiled_validator", "parse_body", "validate_request"]

_MAX_MESSAGE = 300


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw`` (parsed within ``_body.parse_json``'s bounds), or a 400
    saying why it is not one."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, f"The request body must be a JSON object, got {type(body).__name__}.")
    return body


def _param(error: ValidationError) -> str | None:
    return json_path(tuple(error.absolute_path)) or None


@functools.cache
def compiled_validator(name: str) -> jsonschema_rs.Validator:
    """A compiled (Rust) validator of compatible schema ``name``: a fast yes/no that agrees
    with jsonschema (tests/mockserver/test_validation.py), which still words the errors."""
    return jsonschema_rs.validator_for(schemas.load(name, "compatible"))


def _fast_valid(body: dict[str, Any]) -> bool:
    """Whether the compiled validator accepts ``body`` (False when it cannot tell, e.g. an
    integer too large for it, so that jsonschema decides)."""
    try:
        return compiled_validator("chat-completion-request").is_valid(body)
    except (ValueError, OverflowError, RecursionError):
        return False


def _schema_error(body: dict[str, Any]) -> ApiError | None:
    if _fast_valid(body):
        return None
    error = best_match(schemas.validator("chat-completion-request").iter_errors(body))
    if error is None:
        return None
    param = _param(error)
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    where = f"Invalid value for '{param}'" if param else "Invalid request"
    return ApiError(400, f"{where}: {message}", param=param, code="invalid_value")


def _stream_options_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    if not body.get("stream") and body.get("stream_options") is not None:
        yield ApiError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )


def _top_logprobs_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        yield ApiError(
            400, "'logprobs' must be set to true when 'top_logprobs' is used.", param="top_logprobs"
        )


def _limit_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and value < 1:
            yield ApiError(
                400,
                f"Invalid '{key}': integer below minimum value. Expected a value >= 1, "
                f"but got {value} instead.",
                param=key,
                code="integer_below_min_value",
            )


def _seed_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    seed = body.get("seed")
    if seed is not None and not INT64[0] <= seed <= INT64[1]:
        yield ApiError(400, "Invalid 'seed': it must fit in a signed 64-bit integer.", param="seed")


def _logit_bias_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    for key, bias in (body.get("logit_bias") or {}).items():
        if not key.lstrip("-").isdigit() or not 0 <= int(key) < VOCAB_SIZE:
            yield ApiError(
                400,
                f"Invalid key in 'logit_bias': {key!r} is not a token id in [0, {VOCAB_SIZE}).",
                param="logit_bias",
            )
        elif not isinstance(bias, int | float) or not -100 <= bias <= 100:
            yield ApiError(
                400,
                f"Invalid value in 'logit_bias' for {key!r}: {bias!r} is not in [-100, 100].",
                param="logit_bias",
            )


def _repetition_penalty_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    """vLLM and HF refuse a penalty that is not positive (it divides the logits)."""
    penalty = body.get("repetition_penalty")
    if penalty is not None and not penalty > 0:
        yield ApiError(
            400,
            f"repetition_penalty must be greater than zero, got {penalty}.",
            param="repetition_penalty",
        )


def _json_schema_spec(body: dict[str, Any]) -> dict[str, Any] | None:
    """The ``json_schema`` object of a ``json_schema`` response format, else None."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") != "json_schema":
        return None
    return response_format.get("json_schema") or {}


def _response_format_required_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    spec = _json_schema_spec(body)
    if spec is not None and not isinstance(spec.get("schema"), dict):
        yield ApiError(
            400,
            "Invalid 'response_format.json_schema': a 'schema' object is required.",
            param="response_format.json_schema.schema",
        )


def _response_format_schema_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    """The mock's bounds on the schema it builds an answer from (``_schema_limits``)."""
    spec = _json_schema_spec(body)
    if spec is None or not isinstance(spec.get("schema"), dict):
        return
    if (problem := schema_problem(spec["schema"])) is not None:
        yield ApiError(
            400,
            f"Invalid schema for response_format 'json_schema': {problem}",
            param="response_format.json_schema.schema",
            code="invalid_json_schema",
        )


def _tool_schema_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    """The mock's bounds on the tool parameters it builds calls from (``_schema_limits``)."""
    for index, tool in enumerate(body.get("tools") or []):
        function = (tool.get("function") if tool.get("type") == "function" else None) or {}
        parameters = function.get("parameters")
        if parameters is not None and (problem := schema_problem(parameters)) is not None:
            yield ApiError(
                400,
                f"Invalid schema for function {function.get('name')!r}: {problem}",
                param=f"tools[{index}].function.parameters",
                code="invalid_function_parameters",
            )


def _tool_choice_errors(body: dict[str, Any]) -> Iterable[ApiError]:
    choice = body.get("tool_choice")
    tools = body.get("tools") or []
    if choice is None or choice == "none":
        return
    if not tools:
        yield ApiError(
            400, "'tool_choice' is only allowed when 'tools' are specified.", param="tool_choice"
        )
        return
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        names = {(t.get("function") or {}).get("name") for t in tools}
        if name not in names:
            yield ApiError(
                400,
                f"Invalid 'tool_choice': function {name!r} is not among the supplied tools.",
                param="tool_choice",
            )


def _content_part_errors(body: dict[str, Any], *, vision: bool) -> Iterable[ApiError]:
    """A text-only model refuses image_url parts (a vision model takes them) and every model
    input_audio parts, as OpenAI refuses them ("Invalid content type. image_url is only
    supported by certain models.")."""
    unsupported = {"input_audio"} if vision else {"image_url", "input_audio"}
    for i, message in enumerate(body["messages"]):
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("type") in unsupported:
                yield ApiError(
                    400,
                    f"Invalid content type. {part['type']} is only supported by certain models.",
                    param=f"messages[{i}].content[{j}].type",
                    code="unsupported_content_type",
                )


# Rules beyond the schema, in the order a client would want to hear of them. The context length
# is not among them: each answer source checks it with its own count (request_rules).
_RULES: tuple[Callable[[dict[str, Any]], Iterable[ApiError]], ...] = (
    _stream_options_errors,
    _top_logprobs_errors,
    _limit_errors,
    _seed_errors,
    _logit_bias_errors,
    _repetition_penalty_errors,
    _response_format_required_errors,
    _response_format_schema_errors,
    _tool_schema_errors,
    _tool_choice_errors,
)
# The rules of every level: the mock builds answers from the schemas a request brings.
_BUILT_FROM: tuple[Callable[[dict[str, Any]], Iterable[ApiError]], ...] = (
    _response_format_schema_errors,
    _tool_schema_errors,
)


def validate_request(
    body: dict[str, Any], config: MockConfig, level: str | None = None
) -> dict[str, Any]:
    """The body the answer sources answer, or raise the first problem with ``body`` as a
    chat-completion request to this server at validation ``level`` (None: the config's).

    - ``strict``: the compatible schema, the served models (404), the content parts the model
      takes, then the rules beyond the schema (``_RULES``); the body is answered as it is;
    - ``schema``: the compatible schema and the served models only, then the bounds on the
      schemas the request brings; the body is made answerable (``_lenient.answerable``);
    - ``off``: no schema and any model: what the schema refuses is dropped
      (``_lenient.repaired``), then as ``schema`` from the bounds on.
    """
    level = config.validation if level is None else level
    if level == "off":
        if not _fast_valid(body):  # (the schema's own errors, in jsonschema, only when needed)
            body = repaired(body, config.listed_models[0])
    else:
        schema_error = _schema_error(body)
        if schema_error is not None:
            raise schema_error
        if not config.serves(body["model"]):
            raise ApiError(
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
    if level == "strict":
        for error in _content_part_errors(body, vision=config.vision):
            raise error
    for rule in _RULES if level == "strict" else _BUILT_FROM:
        for error in rule(body):
            raise error
    return body if level == "strict" else answerable(body)

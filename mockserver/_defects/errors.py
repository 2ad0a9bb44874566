"""Defects at the error stages: ``error`` (the status and envelope of an error answer,
tuple -> tuple), ``stream_error`` (how the error of a stream request is sent: (None | "data" |
"error-line", status, envelope) -> the same; None: as the JSON answer, else in a 200 stream, as a
data event or an ``error:`` line), ``auth`` (whether the API key is checked) and
``retrieve_unknown`` (whether GET /models/{id} serves an unlisted id), both bool -> bool, and
``fault`` (the fault injected into a valid request, or None: Fault | None -> Fault | None).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mockserver._defects.defect import Defect, Hook

__all__ = ["DEFECTS"]

ErrorAnswer = tuple[int, dict[str, Any]]  # (status, the {"error": {...}} envelope)


def _flat_error(answer: ErrorAnswer) -> ErrorAnswer:
    status, body = answer
    return status, {"detail": body["error"]["message"]}


def _server_error(answer: ErrorAnswer) -> ErrorAnswer:
    status, body = answer
    return (500 if status == 400 else status), body


def _status_for(code: str | int, status: int) -> Hook:
    """An error hook answering errors with ``code`` (or status ``code``) with ``status``."""

    def change(answer: ErrorAnswer) -> ErrorAnswer:
        old, body = answer
        return (status if code in (old, body["error"].get("code")) else old), body

    return change


def _code_for(code: str, new: str | int | None) -> Hook:
    """An error hook giving errors with code ``code`` the code ``new`` instead."""

    def change(answer: ErrorAnswer) -> ErrorAnswer:
        status, body = answer
        if body["error"].get("code") != code:
            return answer
        return status, {**body, "error": {**body["error"], "code": new}}

    return change


_TRACE = (
    'Traceback (most recent call last):\n  File "/usr/lib/python3.11/site-packages/'
    'server/app.py", line 42, in chat\nValueError: invalid request'
)


def _with_traceback(answer: ErrorAnswer) -> ErrorAnswer:
    status, body = answer
    if status != 400:
        return answer
    error = body["error"]
    return status, {**body, "error": {**error, "message": f"{error['message']}\n{_TRACE}"}}


StreamError = tuple[str | None, int, dict[str, Any]]  # (how it is sent, status, envelope)


def _in_stream(how: str, *codes: str | int, params: tuple[str, ...] = ()) -> Hook:
    """A stream_error hook sending ``how`` ("data" or "error-line") the errors with one of
    ``codes`` (an error code or a status) or naming one of ``params``; all when none is given."""

    def change(answer: StreamError) -> StreamError:
        _, status, body = answer
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        param = str(error.get("param") or "").split("[")[0].split(".")[0]
        matched = status in codes or error.get("code") in codes or param in params
        return (how, status, body) if matched or not (codes or params) else answer

    return change


def _silent_close(fault: Any) -> Any:
    if fault is None or fault.error_after is None:
        return fault
    return replace(fault, error_after=None, disconnect_after=fault.error_after)


DEFECTS = (
    # Error answers: their envelope and status (error).
    Defect(
        "flat-error",
        'Errors are answered as {"detail": "..."} instead of the OpenAI envelope.',
        {"error": _flat_error},
    ),
    Defect(
        "500-on-bad-request",
        "Invalid requests get status 500 instead of 400.",
        {"error": _server_error},
    ),
    Defect(
        "context-length-500",
        "A prompt longer than the context gets 500 instead of 400.",
        {"error": _status_for("context_length_exceeded", 500)},
    ),
    Defect(
        "context-length-code-400",
        "A prompt longer than the context gets 400 with code 400 (as vLLM answers), not "
        '"context_length_exceeded".',
        {"error": _code_for("context_length_exceeded", 400)},
    ),
    Defect(
        "unknown-model-500",
        "A request for a model that is not served gets 500 instead of 404.",
        {"error": _status_for("model_not_found", 500)},
    ),
    Defect(
        "unknown-model-400",
        "A request for a model that is not served gets 400 instead of 404.",
        {"error": _status_for("model_not_found", 400)},
    ),
    Defect(
        "rate-limit-as-500",
        "Rate limiting and overload are answered with 500 instead of 429 and 503.",
        {"error": lambda a: _status_for(503, 500)(_status_for(429, 500)(a))},
    ),
    Defect(
        "content-part-error-200",
        "An image_url or input_audio part a text-only model cannot take gets 200 whose body is "
        "the error object, without choices.",
        {"error": _status_for("unsupported_content_type", 200)},
    ),
    Defect(
        "traceback-in-error",
        "400 messages end with a Python traceback and the server's file paths.",
        {"error": _with_traceback},
    ),
    # Whether the key is checked (auth).
    Defect(
        "auth-not-enforced",
        "Requests without the API key, or with a wrong one, are answered.",
        {"auth": lambda _: False},
    ),
    # How the error of a stream request is sent (stream_error).
    Defect(
        "stream-error-as-sse",
        "A stream request that fails validation gets a 200 stream holding the error event.",
        {"stream_error": _in_stream("data")},
    ),
    Defect(
        "stream-context-length-error-line",
        "A stream request over the context gets a 200 stream of one error: line, then [DONE].",
        {"stream_error": _in_stream("error-line", "context_length_exceeded")},
    ),
    Defect(
        "stream-unknown-model-as-sse",
        "A stream request for a model that is not served gets a 200 stream with the error event.",
        {"stream_error": _in_stream("data", "model_not_found")},
    ),
    Defect(
        "stream-range-error-as-sse",
        "A stream request with temperature or top_p out of range gets a 200 error event.",
        {"stream_error": _in_stream("data", params=("temperature", "top_p"))},
    ),
    Defect(
        "stream-stop-error-as-sse",
        "A stream request with more than 4 stop strings gets a 200 stream with the error event.",
        {"stream_error": _in_stream("data", params=("stop",))},
    ),
    # What else is refused, and how (retrieve_unknown, fault).
    Defect(
        "unknown-model-200",
        "GET /models/{id} answers 200 for a model it does not serve.",
        {"retrieve_unknown": lambda _: True},
    ),
    Defect(
        "midstream-silent-close",
        "An error after a stream started closes the connection without an error event.",
        {"fault": _silent_close},
    ),
)

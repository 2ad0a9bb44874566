"""Defects per request (the fault header's defect= items) and per test (scripted), beside the
server's own; the catalogue of quirks."""

from __future__ import annotations

import httpx
import pytest

from mockserver import DEFECTS, FAULT_HEADER, QUIRKS, Defect
from mockserver._app import SCRIPTED_DEFECTS
from mockserver._defects import RequestDefects, known
from mockserver._faults import split_defects

BODY = {"model": "m", "messages": [{"role": "user", "content": "Hi there!"}]}


def post(server, body=BODY, spec=None, **headers):
    if spec is not None:
        headers[FAULT_HEADER] = spec
    return httpx.post(server.base_url + "/chat/completions", json=body, headers=headers)


def finish(response):
    return response.json()["choices"][0]["finish_reason"]


@pytest.mark.parametrize(
    ("spec", "names", "rest"),
    [
        ("defect=finish-reason-eos", ("finish-reason-eos",), None),
        ("defect=a,b; defect=c", ("a", "b", "c"), None),
        ("status=503;defect=a", ("a",), "status=503"),
        ("disconnect-after=2", (), "disconnect-after=2"),
    ],
    ids=["one", "several", "beside-a-fault", "none"],
)
def test_split_defects(spec, names, rest):
    assert split_defects(spec) == (names, rest)


@pytest.mark.parametrize(
    "spec", ["defect=", "defect", "defect= ,"], ids=["empty", "flag", "commas"]
)
def test_a_defect_item_without_a_name_is_refused(spec):
    with pytest.raises(ValueError, match="defect needs a value"):
        split_defects(spec)


def test_a_defect_for_one_request_only(mock):
    assert finish(post(mock, spec="defect=finish-reason-eos")) == "eos"
    assert finish(post(mock)) == "stop"


def test_the_answer_cache_keeps_requests_apart(mock):
    # the same body answered clean, with a defect, then clean again: the kept answer is the
    # clean one and the defect's answer is never kept
    assert finish(post(mock)) == "stop"
    assert finish(post(mock, spec="defect=finish-reason-eos")) == "eos"
    assert finish(post(mock)) == "stop"


def test_several_defects_and_a_fault_in_one_header(mock):
    body = {**BODY, "stream": True}
    answer = post(mock, body, spec="defect=finish-reason-eos,missing-done").text
    assert '"finish_reason":"eos"' in answer.replace(" ", "")
    assert "[DONE]" not in answer
    assert post(mock, spec="defect=finish-reason-eos;status=503").status_code == 503


def test_an_unknown_defect_is_a_400_naming_it(mock):
    answer = post(mock, spec="defect=no-such-quirk")
    assert answer.status_code == 400
    assert "unknown defect 'no-such-quirk'" in answer.json()["error"]["message"]
    assert FAULT_HEADER in answer.json()["error"]["message"]


def test_the_server_defects_still_apply(start_mock):
    server = start_mock(defects=("no-usage",))
    answer = post(server, spec="defect=finish-reason-eos").json()
    assert "usage" not in answer and answer["choices"][0]["finish_reason"] == "eos"


def test_error_and_auth_defects_apply_per_request(start_mock):
    server = start_mock(api_key="sk-right")
    assert post(server).status_code == 401
    assert post(server, spec="defect=auth-not-enforced").status_code == 200
    refused = post(server, {"model": "m"}, spec="defect=error-as-string,auth-not-enforced")
    assert refused.status_code == 400 and isinstance(refused.json()["error"], str)


def test_a_stateful_defect_keeps_its_state_across_requests_that_ask_for_it(mock):
    spec = "defect=abuse-poisons-user"
    assert post(mock, {"model": "m", "user": "u1"}, spec=spec).status_code == 400
    assert post(mock, {**BODY, "user": "u1"}, spec=spec).status_code == 500
    assert post(mock, {**BODY, "user": "u1"}).status_code == 200  # without it: clean


def test_scripted_defects_apply_until_cleared(mock):
    scripted = mock.app[SCRIPTED_DEFECTS]
    scripted.add("finish-reason-eos")
    assert finish(post(mock)) == "eos"
    assert finish(post(mock)) == "eos"
    scripted.clear()
    assert finish(post(mock)) == "stop"


def test_request_defects_bind_each_combination_once():
    defects = RequestDefects(("no-usage",))
    assert defects.of() is defects.server
    both = defects.of(("finish-reason-eos",))
    assert both.names == ("no-usage", "finish-reason-eos")
    assert defects.of(("finish-reason-eos",)) is both
    defects.add("missing-done")
    assert defects.of().names == ("no-usage", "missing-done")
    defects.clear()
    assert defects.of() is defects.server and defects.of(("finish-reason-eos",)) is not both


def test_an_unknown_scripted_defect_is_a_value_error():
    with pytest.raises(ValueError, match="unknown defect 'nope'"):
        RequestDefects().add("nope")
    with pytest.raises(ValueError, match="known: "):
        known("nope")


def test_the_catalogue_is_every_defect_with_a_report():
    assert {name: d for name, d in DEFECTS.items() if d.report is not None} == QUIRKS
    assert all(d.report.startswith("https://github.com/") for d in QUIRKS.values())


def test_a_report_must_be_an_https_url():
    with pytest.raises(ValueError, match="not an https URL"):
        Defect("x", "Nothing.", {"completion": lambda body: body}, report="github.com/a/b/1")


def test_request_defects_keep_at_most_capacity_combinations():
    defects = RequestDefects(capacity=2)
    first = defects.of(("no-usage",))
    defects.of(("missing-done",))
    third = defects.of(("null-event",))
    assert defects.of(("null-event",)) is third
    assert defects.of(("no-usage",)) is not first  # the oldest was dropped, bound afresh

"""The conditional-request decision, pure: the RPC table as a property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from armguard.emulator.conditions import Outcome, etags_match, evaluate, normalize_etag

LIVE = 'W/"abc"'


def rpc_table(
    method: str, exists: bool, if_match: str | None, if_none_match: str | None
) -> Outcome:
    """The RPC Addendum's table written out independently of the implementation."""
    if method == "PATCH" and not exists:
        return Outcome.NOT_FOUND
    if method == "DELETE" and not exists:
        return Outcome.NO_CONTENT
    if if_match is not None:
        if not exists:
            return Outcome.PRECONDITION_FAILED
        if if_match != "*" and normalize_etag(if_match) != "abc":
            return Outcome.PRECONDITION_FAILED
    if (
        if_none_match is not None
        and exists
        and (if_none_match == "*" or normalize_etag(if_none_match) == "abc")
    ):
        return Outcome.PRECONDITION_FAILED
    return Outcome.PROCEED


headers = st.sampled_from([None, "*", LIVE, '"abc"', "abc", 'W/"other"', '"other"'])


@given(
    method=st.sampled_from(["PUT", "PATCH", "DELETE"]),
    exists=st.booleans(),
    if_match=headers,
    if_none_match=headers,
)
def test_decision_matches_the_rpc_table(
    method: str, exists: bool, if_match: str | None, if_none_match: str | None
) -> None:
    got = evaluate(method, exists, LIVE if exists else None, if_match, if_none_match)
    assert got is rpc_table(method, exists, if_match, if_none_match)


def test_lists_and_blank_headers() -> None:
    assert etags_match('W/"x", W/"abc"', LIVE)
    assert not etags_match('W/"x"', None)
    assert evaluate("PUT", True, LIVE, "  ", None) is Outcome.PROCEED
    assert evaluate("PUT", False, None, None, "*") is Outcome.PROCEED

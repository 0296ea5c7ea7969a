"""The REST token table: its file format, roles and the Authorization header."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.credentials.rest_tokens import Role, TokenTable, bearer_token, new_token
from mayastor.errors import InvalidArgument

ADMIN = "a" * 20
READER = "r" * 20


def test_a_token_file_gives_each_token_its_role() -> None:
    table = TokenTable.parse(f"# tokens\n\nadmin {ADMIN}\nread-only {READER}\n")
    assert table.role_of(ADMIN) is Role.ADMIN
    assert table.role_of(READER) is Role.READ_ONLY


def test_an_unknown_token_has_no_role() -> None:
    table = TokenTable.parse(f"admin {ADMIN}\n")
    assert table.role_of("b" * 20) is None
    assert table.role_of(ADMIN[:-1]) is None


def test_a_read_only_role_allows_reads_only() -> None:
    assert Role.READ_ONLY.allows("GET")
    assert Role.READ_ONLY.allows("head")
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        assert not Role.READ_ONLY.allows(method)
        assert Role.ADMIN.allows(method)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"owner {ADMIN}\n", "unknown role 'owner'"),
        ("admin short\n", "at least 16"),
        (f"admin {ADMIN} extra\n", "expected 'ROLE TOKEN'"),
        (f"admin {ADMIN}\nread-only {ADMIN}\n", "given twice"),
        ("# nothing\n", "holds no token"),
    ],
)
def test_a_malformed_token_file_is_refused_with_the_line_at_fault(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says):
        TokenTable.parse(text)


def test_an_unreadable_token_file_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(InvalidArgument, match="cannot read the token file"):
        TokenTable.load("/nonexistent/tokens")


@given(st.text(max_size=200))
def test_parsing_any_text_gives_a_table_or_a_clear_error(text: str) -> None:
    try:
        table = TokenTable.parse(text)
    except InvalidArgument:
        return
    assert table.roles


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {ADMIN}", ADMIN),
        (f"bearer   {ADMIN} ", ADMIN),
        (None, None),
        ("", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer ", None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(header) == token


def test_new_tokens_are_long_and_different() -> None:
    tokens = {new_token() for _ in range(10)}
    assert len(tokens) == 10
    assert all(len(t) >= 40 for t in tokens)
    TokenTable.parse("".join(f"admin {t}\n" for t in tokens))

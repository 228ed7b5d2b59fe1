"""Header values listing caller-chosen names (issue 19, item 11, and what the fuzz found)."""

from __future__ import annotations

import pytest

from gateway.server.headers import NAME_CHARS, name_list


@pytest.mark.parametrize(
    ("names", "value"),
    [
        (["top_k", "seed"], "top_k,seed"),
        (["a\nb", "c\r\nx-evil: 1"], "a%0Ab,c%0D%0Ax-evil:%201"),
        (["é\u202e", "日本"], "%C3%A9%E2%80%AE,%E6%97%A5%E6%9C%AC"),
        (["a,b", "50%"], "a%2Cb,50%25"),
        ([f"p{i}" for i in range(25)], ",".join(f"p{i}" for i in range(20)) + ",(+5 more)"),
    ],
)
def test_names_are_listed_safely(names: list[str], value: str) -> None:
    assert name_list(names) == value


def test_the_value_stays_small_however_many_and_long_the_names() -> None:
    value = name_list(["\U0001f642" * 10_000] * 15_000)
    assert len(value) <= 20 * (NAME_CHARS + 1) + len("(+14980 more)") < 2048
    value.encode("latin-1")  # always encodable in a header
    assert value.endswith(",(+14980 more)")


def test_a_cut_never_leaves_half_an_escape() -> None:
    for prefix in range(4):
        value = name_list(["a" * prefix + "\u00e9" * 100])
        assert len(value) <= NAME_CHARS
        assert "%" not in value[-2:]

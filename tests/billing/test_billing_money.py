from decimal import Decimal

import pytest

from billing.money import MAX_MICROS, InvalidAmount, micros_to_usd, usd_to_micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0", 0),
        ("1", 1_000_000),
        ("0.05", 50_000),
        ("0.000001", 1),
        ("12.345678", 12_345_678),
        ("10.100000", 10_100_000),
        ("007.5", 7_500_000),
        ("9223372036854.775807", MAX_MICROS),
    ],
)
def test_usd_strings_convert_exactly_to_micros(text, micros):
    assert usd_to_micros(text) == micros


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        (Decimal("0.050000"), 50_000),
        (Decimal("1E+2"), 100_000_000),
        (Decimal("0.000001"), 1),
        (Decimal("-0"), 0),
        (3, 3_000_000),
    ],
)
def test_decimals_and_ints_convert_exactly(value, micros):
    assert usd_to_micros(value) == micros


@pytest.mark.parametrize(
    "value",
    [
        "0.0000001",  # seven places, even if the seventh is zero: the rule is six
        "1.0000000",
        Decimal("0.0000001"),
        Decimal("1.0000000"),
        0.1,
        1.0,
        True,
        Decimal("NaN"),
        Decimal("Infinity"),
        "NaN",
        "Infinity",
        "1e3",
        " 1",
        "1 ",
        "",
        ".5",
        "5.",
        "+1",
        "1,5",
        "\u0661",  # an Arabic-Indic digit: only ASCII digits are amounts
        "-1",
        Decimal("-0.01"),
        "9223372036854.775808",
        "100000000000000000000",
        Decimal("1E+30"),
        None,
        [1],
    ],
)
def test_invalid_usd_amounts_are_refused(value):
    with pytest.raises(InvalidAmount):
        usd_to_micros(value)


def test_negative_amounts_parse_only_when_asked():
    assert usd_to_micros("-1.5", allow_negative=True) == -1_500_000
    assert usd_to_micros(Decimal("-0.000001"), allow_negative=True) == -1


def test_string_and_decimal_of_the_same_text_agree():
    for text in ("0", "0.5", "123.456789", "1000000"):
        assert usd_to_micros(text) == usd_to_micros(Decimal(text))


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "0.000000"),
        (1, "0.000001"),
        (50_000, "0.050000"),
        (1_000_000, "1.000000"),
        (12_345_678, "12.345678"),
        (-1, "-0.000001"),
        (-1_500_000, "-1.500000"),
        (MAX_MICROS, "9223372036854.775807"),
    ],
)
def test_micros_render_with_exactly_six_places(micros, text):
    assert micros_to_usd(micros) == text


@pytest.mark.parametrize("value", [1.0, True, Decimal(1), "1"])
def test_only_integers_render_as_usd(value):
    with pytest.raises(InvalidAmount):
        micros_to_usd(value)


def test_round_trip_is_the_identity():
    for micros in (0, 1, 999_999, 1_000_001, 5_000_000_000, MAX_MICROS):
        assert usd_to_micros(micros_to_usd(micros)) == micros

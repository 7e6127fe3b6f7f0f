import pytest

from billing.fees import minimum_fee
from billing.money import InvalidAmount


@pytest.mark.parametrize(
    ("reserved", "fee"),
    [
        (0, 0),
        (1, 1),  # capped at the reservation
        (4_999, 4_999),  # still below the $0.005 floor: the reservation caps it
        (5_000, 5_000),  # floor == reservation
        (5_001, 5_000),  # the floor applies
        (249_999, 5_000),  # 2% = 4_999 (rounded down) < floor
        (250_000, 5_000),  # 2% == floor
        (250_050, 5_001),  # 2% just above the floor
        (1_000_000, 20_000),  # $1 → $0.02
        (4_999_999, 99_999),  # 2% = 99_999.98, rounded down
        (5_000_000, 100_000),  # 2% == cap
        (5_000_049, 100_000),
        (5_000_050, 100_000),  # 2% = 100_001 > cap
        (10**15, 100_000),
    ],
)
def test_minimum_fee_edges(reserved, fee):
    assert minimum_fee(reserved) == fee


def test_minimum_fee_never_exceeds_the_reservation_or_the_cap():
    for reserved in range(0, 6_000_000, 997):
        fee = minimum_fee(reserved)
        assert 0 <= fee <= min(reserved, 100_000)


@pytest.mark.parametrize("value", [-1, 1.5, True, "1000"])
def test_minimum_fee_refuses_what_is_not_a_reservation(value):
    with pytest.raises(InvalidAmount):
        minimum_fee(value)

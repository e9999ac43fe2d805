"""pass@k and pass^k: the unbiased estimators, checked on known values and by enumeration."""

from __future__ import annotations

import itertools
from math import isclose

import pytest

from cto_harness.jobs import pass_at_k, pass_hat_k


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (10, 3, 1, 0.3),
    (10, 3, 2, 1 - 21 / 45),
    (10, 3, 8, 1.0),
    (5, 0, 3, 0.0),
    (5, 5, 5, 1.0),
    (3, 1, 3, 1.0),
])
def test_pass_at_k_known_values(n: int, c: int, k: int, expected: float) -> None:
    value = pass_at_k(n, c, k)
    assert value is not None and isclose(value, expected, abs_tol=1e-4)


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (10, 3, 1, 0.3),
    (10, 3, 2, 3 / 45),
    (5, 5, 5, 1.0),
    (5, 4, 5, 0.0),
])
def test_pass_hat_k_known_values(n: int, c: int, k: int, expected: float) -> None:
    value = pass_hat_k(n, c, k)
    assert value is not None and isclose(value, expected)


@pytest.mark.parametrize(("n", "c"), [(n, c) for n in range(1, 7) for c in range(0, n + 1)])
def test_estimators_equal_the_mean_over_every_k_subset(n: int, c: int) -> None:
    """The estimators are exactly the average over all k-subsets of the n trials."""
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(outcomes, k))
        assert isclose(pass_at_k(n, c, k) or 0.0, sum(any(s) for s in subsets) / len(subsets))
        assert isclose(pass_hat_k(n, c, k) or 0.0, sum(all(s) for s in subsets) / len(subsets))


def test_too_few_trials_give_none() -> None:
    assert pass_at_k(2, 1, 3) is None and pass_hat_k(2, 1, 3) is None


@pytest.mark.parametrize(("n", "c", "k"), [(200, 10, 10), (200, 37, 1), (100, 50, 20), (20, 1, 5)])
def test_pass_at_k_matches_the_codex_paper_product_form(n: int, c: int, k: int) -> None:
    """Chen et al. 2021: 1 - prod_{i=n-c+1}^{n} (1 - k / i)."""
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1 - k / i
    assert isclose(pass_at_k(n, c, k) or 0.0, 1 - product, rel_tol=1e-9)

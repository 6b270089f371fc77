"""bench/load.py's load run, short: concurrent users through `/ask` of a real `articleqa serve`.

Functional only (no time is asserted): every request answers, none fails. `make bench` runs the
full 20 users for 30 s and reports the latencies (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json

import pytest

from bench.load import cpu_info, measure_load

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a real `articleqa serve` on 127.0.0.1


@pytest.mark.timeout(300)
def test_four_users_for_five_seconds_get_answers_and_no_errors(example_index):
    result = measure_load(users=4, seconds=5, index_dir=example_index)
    assert result["errors"] == 0, result["error_messages"]
    assert result["requests"] > 0
    assert result["grounded"] > 0  # answers, not just replies
    assert result["requests_per_user_min"] > 0  # every user was served, none starved
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["cpu"] == cpu_info()
    json.dumps(result)  # what `make bench` writes to bench/results.json

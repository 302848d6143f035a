"""wrk's text output -> figures (advisor.parse.wrk): pure, runs without root."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.errors import EnvironmentProblem
from advisor.parse.wrk import parse_wrk


def test_parse_wrk_units():
    text = """Running 1s test @ http://10.201.0.1:8080/json
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   152.30us  1.02ms  21.07ms   98.80%
    Req/Sec    50.12k     3.11k   55.02k    80.00%
  Latency Distribution
     50%   90.00us
     75%  120.00us
     90%  180.00us
     99%    1.20ms
  49876 requests in 1.00s, 8.13MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  49870.12
Transfer/sec:      8.13MB
"""
    r = parse_wrk(text)
    assert r["requests_per_sec"] == 49870.12 and r["requests"] == 49876 and r["elapsed_s"] == 1.0
    assert r["latency_ms"] == pytest.approx({"avg": 0.1523, "stdev": 1.02, "max": 21.07, "p50": 0.09,
                                             "p75": 0.12, "p90": 0.18, "p99": 1.2})
    assert r["transfer_bytes_per_sec"] == pytest.approx(8.13 * 1024 * 1024)
    assert r["errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 1, "non_2xx_3xx": 3}
    with pytest.raises(EnvironmentProblem):
        parse_wrk("unable to connect to 10.201.0.1:8080 Connection refused\n")


def test_numbers_wrk_never_prints_leave_their_field_out():
    """The --during command may print anything as "wrk": a Latency of "1.2.3ms" was an internal
    error after the whole collection, and 400 digits of Requests/sec an inf that no report could
    write (JSON has no inf)."""
    text = ("    Latency   1.2.3ms  1.02ms  21.07ms   98.80%\n"
            "  12 requests in 1.00s, " + "9" * 400 + "MB read\n"
            "  Socket errors: connect 0, read " + "9" * 5000 + ", write 0, timeout 1\n"
            "Requests/sec:  49870.12\n")
    r = parse_wrk(text)
    assert r["requests_per_sec"] == 49870.12 and r["latency_ms"] == {} and r["requests"] is None
    assert r["errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx_3xx": 0}
    with pytest.raises(EnvironmentProblem):
        parse_wrk("Requests/sec:  " + "9" * 400 + ".5\n")


WRK_LINE = st.sampled_from(["Requests/sec:  {}", "Transfer/sec: {}MB", "{} requests in {}s, {}KB read",
                            "Latency {}ms {}us {}s 1%", "99% {}ms", "Socket errors: connect {}, read {}, "
                            "write {}, timeout {}", "Non-2xx or 3xx responses: {}"])
WRK_NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{abs(f)}"),
                       st.from_regex(r"[0-9.]{1,12}", fullmatch=True), st.just("9" * 400), st.just("9" * 5000))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(WRK_LINE, st.lists(WRK_NUMBER, min_size=4, max_size=4)), max_size=8))
def test_property_wrk_output_gives_finite_figures_or_one_environment_problem(lines):
    """Any mix of wrk's lines and numbers: figures JSON can hold, or the one refusal (no Requests/sec)."""
    text = "\n".join(line.format(*numbers) for line, numbers in lines)
    try:
        r = parse_wrk(text)
    except EnvironmentProblem:
        return
    json.dumps(r, allow_nan=False)  # every figure is one JSON can hold

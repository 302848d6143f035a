"""wrk's text output -> figures (advisor.parse.wrk): pure, runs without root."""

import pytest

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

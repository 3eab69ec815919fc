"""schemathesis against the server's own OpenAPI schema: generated requests never get a 5xx.

(schemathesis' pytest plugin does not run under pytest 9 yet, so the operations' Hypothesis
strategies are driven directly.)
"""

import schemathesis
from hypothesis import HealthCheck, given, settings


def test_generated_requests_get_an_answer_never_a_server_error(live_server):
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /api/predict", "POST /v1/models/digitrec:predict"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers(case):
            response = case.call(base_url=live_server, timeout=20)
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text}"
            if response.status_code >= 400:
                assert response.json()["error"]

        answers()

"""schemathesis against the service's own OpenAPI schema: no 5xx, no answer off its schema.

Every operation of the running service's ``/openapi.json`` gets Hypothesis-generated requests,
valid and invalid, and schemathesis's checks: no server error, documented status codes and
content types, answers that match their schema, invalid data refused. One check is left out,
``positive_data_acceptance``: rules between fields (a due date before its issue date, an
``amount_paid`` that settles an "open" invoice, a payment for an invoice the history does not
hold) cannot be written in JSON Schema, and the service refuses them with a 422 naming the
field, as docs/api.md says.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings


@pytest.mark.xdist_group("schemathesis")
def test_no_server_error_and_every_answer_on_its_schema(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/recommend", "/feedback", "/health"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case):
            case.call_and_validate(base_url=server.url, excluded_checks=[
                schemathesis.checks.positive_data_acceptance])

        check()

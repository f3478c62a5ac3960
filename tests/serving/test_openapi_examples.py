"""The OpenAPI document a client generates from: a summary, a description and an example of
every request and answer, and a description of every field; the examples hold."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from paycadence.serving import answers, examples
from paycadence.serving.routes import feedback, recommend

ROUTES = (("/recommend", "post"), ("/feedback", "post"), ("/health", "get"))


@pytest.fixture(scope="module")
def openapi(server) -> dict:
    return httpx.get(f"{server.url}/openapi.json").json()


def test_every_route_is_described_for_its_users_with_examples(openapi):
    for path, method in ROUTES:
        op = openapi["paths"][path][method]
        assert op["summary"] and op["description"], path
        assert "``" not in op["description"], f"{path}: a developer's docstring, not the API's"
        assert "example" in op["responses"]["200"]["content"]["application/json"], path
        if method == "post":
            assert op["requestBody"]["content"]["application/json"]["examples"], path
            assert "example" in op["responses"]["422"]["content"]["application/json"], path
    assert recommend.DESCRIPTION.strip() in openapi["paths"]["/recommend"]["post"]["description"]
    assert feedback.DESCRIPTION.strip() in openapi["paths"]["/feedback"]["post"]["description"]


def test_every_field_has_a_description(openapi):
    missing = [f"{name}.{field}" for name, schema in openapi["components"]["schemas"].items()
               for field, prop in schema.get("properties", {}).items()
               if "description" not in prop and "$ref" not in prop]
    assert missing == []


def test_the_request_examples_are_answered(server, make_client, response_schema):
    for name, example in examples.RECOMMEND_REQUESTS.items():
        answer = httpx.post(f"{server.url}/recommend", json=example["value"], timeout=60)
        assert answer.status_code == 200, (name, answer.text)
        jsonschema.validate(answer.json(), response_schema)
    client = make_client()  # a store of its own: the shared service's book stays as it is
    for name, example in examples.FEEDBACK_REQUESTS.items():
        answer = client.post("/feedback", json=example["value"])
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json() == examples.FEEDBACK_RESPONSE


def test_the_answer_examples_are_valid_answers(response_schema):
    jsonschema.validate(examples.RECOMMEND_RESPONSE, response_schema)
    answers.RecommendResponse.model_validate(examples.RECOMMEND_RESPONSE)
    answers.FeedbackResponse.model_validate(examples.FEEDBACK_RESPONSE)
    answers.Health.model_validate(examples.HEALTH_RESPONSE)
    answers.Problem.model_validate(examples.REFUSED)
    rec = examples.RECOMMEND_RESPONSE["recommendations"][0]
    assert sum(a["probability"] for a in rec["alternatives"]) == pytest.approx(1.0)
    assert [w["week"] for w in rec["cash_forecast"]] == list(range(1, 14))

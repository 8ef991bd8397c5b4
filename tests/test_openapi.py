"""The OpenAPI document: valid, complete both ways, built from the validating schemas."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from shopctl import schemas
from shopctl.api.openapi import REF, served_routes
from shopctl.api.openapi_operations import OPERATIONS, REQUEST_MODELS

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict:
    """The document as `shopctl api openapi` builds it: no server, no database."""
    from shopctl.api.app import standalone_document

    return standalone_document()


@pytest.fixture
def served(app_client):
    """The document as served, and the app after it started (every route registered)."""
    _, response = app_client.get("/api/v1/openapi.json")
    assert response.status == 200
    return response.json, app_client.sanic_app


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def _shape(path: str) -> str:
    """A path with its parameters blanked, Sanic's `<id:str>` and OpenAPI's `{id}` alike."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_the_document_is_valid_openapi(document):
    from openapi_spec_validator import validate

    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_served_route_is_documented_and_every_documented_one_served(served):
    document, app = served
    routes = {(route.method, _shape(route.path)) for route in served_routes(app)}
    documented = {(method, _shape(path)) for method, path, _ in _operations(document)}
    assert routes - documented == set(), "served but undocumented"
    assert documented - routes == set(), "documented but not served"
    assert ("POST", "/api/v1/order/{}/pay") in routes and ("GET", "/") in routes


def test_routes_left_out_are_only_preflight_twins_of_documented_paths(served):
    document, app = served
    paths = {_shape(path) for path in document["paths"]}
    for route in served_routes(app, automatic=True):
        assert route.method in ("OPTIONS", "HEAD"), route
        assert _shape(route.path) in paths, route
    assert "OPTIONS" in document["info"]["description"]


def test_the_cli_prints_the_document_the_server_serves(served, cli, tmp_path):
    document, _ = served
    result = cli("api", "openapi")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == document
    result = cli("api", "openapi", "--output", str(tmp_path / "openapi.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "openapi.json").read_text()) == document


def test_request_bodies_are_the_pydantic_schemas_that_validate_requests(document):
    components = document["components"]["schemas"]
    for model in REQUEST_MODELS:
        own = model.model_json_schema(by_alias=True, ref_template=REF)
        published = components[model.__name__]
        assert published["properties"].keys() == own["properties"].keys(), model
        assert published.get("required") == own.get("required"), model
        assert published["additionalProperties"] is False, model
    change = components["PasswordChange"]["properties"]
    assert set(change) == {"oldPassword", "newPassword"}  # the aliases clients send
    body = document["paths"]["/api/v1/order"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": REF.format(model="OrderCreate")
    }


def test_query_and_path_parameters_come_from_their_schemas(document):
    listing = document["paths"]["/api/v1/product"]["get"]["parameters"]
    by_name = {parameter["name"]: parameter for parameter in listing}
    assert set(by_name) == set(schemas.ProductListQuery.model_fields)
    assert by_name["limit"]["schema"]["maximum"] == 100
    assert by_name["sortBy"]["schema"]["enum"] == list(schemas.PRODUCT_SORTS)
    orders = document["paths"]["/api/v1/order"]["get"]["parameters"]
    status = next(p for p in orders if p["name"] == "status")
    assert status["schema"]["enum"] == list(schemas.ORDER_STATUSES)  # no null: absent instead
    (order_id,) = document["paths"]["/api/v1/order/{orderId}"]["get"]["parameters"]
    assert order_id == {
        "name": "orderId",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def test_documented_auth_is_what_the_server_enforces(document, server):
    """Documented as needing a token ⇔ answered 401 without one."""
    for method, path, operation in _operations(document):
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        if "docs/assets" in path:
            url = path.replace("{name}", "swagger-ui.css")
        status = server.http.request(method, url, json={}).status_code
        if operation.get("security") is not None:
            assert status == 401, (method, path, status)
        elif not path.endswith("/refresh-token"):  # its credential is the refresh token
            assert status != 401, (method, path, status)
        assert str(status) in operation["responses"], (method, path, status)


def test_success_envelopes_carry_the_v1_messages(document):
    login = document["paths"]["/api/v1/auth/login"]["post"]["responses"]["200"]
    envelope = login["content"]["application/json"]["schema"]
    assert envelope["required"] == ["statusCode", "success", "message", "data"]
    assert envelope["properties"]["message"]["const"] == "User Logged In Successfully"
    assert envelope["properties"]["data"] == {"$ref": REF.format(model="Session")}
    listing = document["paths"]["/api/v1/product"]["get"]["responses"]["200"]
    assert "meta" in listing["content"]["application/json"]["schema"]["required"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["cookieAuth"] == {"type": "apiKey", "in": "cookie", "name": "accessToken"}


def test_every_operation_has_an_error_envelope_for_each_failure(document):
    for method, path, operation in _operations(document):
        failures = [status for status in operation["responses"] if status[0] in "45"]
        assert "500" in failures, (method, path)
        for status in failures:
            assert operation["responses"][status]["$ref"].startswith("#/components/responses/")
    bad = document["components"]["responses"]["BadRequest"]["content"]["application/json"]
    assert bad["example"]["error"][0].keys() == {"path", "message"}


def test_every_route_name_in_the_table_is_served(served):
    """A renamed handler would leave a stale entry behind: the table must match the app."""
    _, app = served
    names = {route.name for route in served_routes(app)}
    assert names == set(OPERATIONS)

"""Offline checks of infra/template.yaml (the AWS SAM template).

Run with `.venv/bin/python -m pytest -q tests/infra` (scripts/test.sh does).
The template is read with cfn-lint's YAML loader so !Ref, !Sub, !GetAtt and
!If parse into their long forms ({"Ref": ...}, {"Fn::Sub": ...}, ...).
"""

import copy
import json
import pathlib
import re

import pytest
from cfnlint.decode.cfn_yaml import load

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "template.yaml"


def plain(value):
    """cfn-lint's node classes as plain dicts, lists and strings."""
    return json.loads(json.dumps(value))


TEMPLATE = plain(load(str(TEMPLATE_PATH)))
RESOURCES = TEMPLATE["Resources"]
GLOBALS = TEMPLATE.get("Globals", {}).get("Function", {})
TABLE_JSON = json.loads((ROOT / "infra" / "dynamodb-table.json").read_text())

# Logical id -> binary (= function name in the contract).
FUNCTIONS = {
    "ConsentStartFunction": "consent-start",
    "OAuthCallbackFunction": "oauth-callback",
    "SendEnvelopeFunction": "send-envelope",
    "ConnectionFunction": "connection",
    "TokenRefreshFunction": "token-refresh",
}

# The contract's routes and the binary behind each.
ROUTES = {
    ("POST", "/docusign/consent"): "consent-start",
    ("POST", "/docusign/consent/confirm"): "consent-start",
    ("GET", "/docusign/callback"): "oauth-callback",
    ("POST", "/docusign/envelopes"): "send-envelope",
    ("GET", "/docusign/connection"): "connection",
    ("DELETE", "/docusign/connection"): "connection",
}

# The routes anyone may call (no CRM token): DocuSign's redirect to the
# callback, and later DocuSign Connect's listener.
PUBLIC_ROUTES = {("GET", "/docusign/callback"), ("POST", "/docusign/events/{tenant}")}

TIMEOUTS = {
    "consent-start": 10,
    "oauth-callback": 10,
    "connection": 10,
    "send-envelope": 29,
    "token-refresh": 300,
}

# --------------------------------------------------------------------------
# Least privilege: every grant a function has, as
# (action, resource, encryption-context key, allowed values).

TABLE = "table"
DUE_INDEX = "due_index"
TOKEN_KEY = "token_key"
SECRETS_KEY = "secrets_key"

RESOURCE_NAMES = {
    json.dumps({"Fn::GetAtt": ["TokenTable", "Arn"]}): TABLE,
    json.dumps({"Fn::Sub": "${TokenTable.Arn}/index/due_index"}): DUE_INDEX,
    json.dumps({"Fn::GetAtt": ["TokenKey", "Arn"]}): TOKEN_KEY,
    json.dumps({"Ref": "SecretsKeyArn"}): SECRETS_KEY,
}

TOKENS = ("docusign_auth", "docusign_refresh")


def ddb(actions, resource=TABLE):
    return {(f"dynamodb:{a}", resource, None, None) for a in actions}


def token_key(action, *records):
    return {(f"kms:{action}", TOKEN_KEY, "record", frozenset(records))}


def secrets(*names):
    return {("kms:Decrypt", SECRETS_KEY, "connector_secret", frozenset(names))}


EXPECTED_GRANTS = {
    "consent-start": ddb(["PutItem", "GetItem", "DeleteItem", "ConditionCheckItem"])
    | token_key("Encrypt", "consent")
    | secrets("CRM_JWT_SECRET"),
    "oauth-callback": ddb(["GetItem", "UpdateItem", "PutItem", "ConditionCheckItem"])
    | token_key("Decrypt", "consent")
    | token_key("Encrypt", *TOKENS)
    | secrets("DOCUSIGN_SECRET_KEY"),
    "connection": ddb(["GetItem", "Query", "DeleteItem"]) | secrets("CRM_JWT_SECRET"),
    "token-refresh": ddb(["Query"], DUE_INDEX)
    | ddb(["GetItem", "UpdateItem", "PutItem"])
    | token_key("Decrypt", "docusign_refresh")
    | token_key("Encrypt", *TOKENS)
    | secrets("DOCUSIGN_SECRET_KEY"),
    "send-envelope": ddb(["GetItem", "UpdateItem", "PutItem"])
    | token_key("Decrypt", *TOKENS)
    | token_key("Encrypt", *TOKENS)
    | secrets("CRM_JWT_SECRET", "DOCUSIGN_SECRET_KEY"),
}

# The encryption-context keys the code uses (shared/src/cipher.rs).
CONTEXT_KEYS = {TOKEN_KEY: {"tenant_id", "record"}, SECRETS_KEY: {"connector_secret"}}

# --------------------------------------------------------------------------
# Environment: exactly these variables per function.

COMMON_ENV = {
    "DOCUSIGN_ENVIRONMENT",
    "DOCUSIGN_INTEGRATION_KEY",
    "DOCUSIGN_SECRET_KEY_CIPHERTEXT",
    "DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT",
    "TOKEN_TABLE",
    "TOKEN_KEY_ID",
}
CRM_ENV = {"CRM_JWT_SECRET_CIPHERTEXT", "CRM_JWT_AUDIENCE", "CRM_JWT_ISSUER", "CRM_JWT_JWKS_URL"}
HOSTS_ENV = {"DOCUSIGN_API_HOSTS"}
EXPECTED_ENV = {
    "consent-start": COMMON_ENV | CRM_ENV | {"DOCUSIGN_REDIRECT_URI"},
    "oauth-callback": COMMON_ENV | HOSTS_ENV | {"DOCUSIGN_REDIRECT_URI", "DOCUSIGN_ACCOUNT_ID", "CRM_ORIGIN"},
    "send-envelope": COMMON_ENV | CRM_ENV | HOSTS_ENV,
    "connection": COMMON_ENV | CRM_ENV,
    "token-refresh": COMMON_ENV | HOSTS_ENV,
}
CRM_FUNCTIONS = {"consent-start", "send-envelope", "connection"}

# Reserved concurrency parameter per function and its default: the public
# callback below every CRM route's function.
CONCURRENCY = {
    "consent-start": ("ConsentStartConcurrency", 20),
    "oauth-callback": ("OAuthCallbackConcurrency", 10),
    "send-envelope": ("SendEnvelopeConcurrency", 100),
    "connection": ("ConnectionConcurrency", 50),
    "token-refresh": ("TokenRefreshConcurrency", 2),
}

EXPECTED_PARAMETER_DEFAULTS = {
    "DocuSignEnvironment": "sandbox",
    "DocuSignIntegrationKey": None,
    "DocuSignSecretKeyCiphertext": None,
    "DocuSignSecretKeyNextCiphertext": "",
    "CrmJwtSecretCiphertext": "",
    "SecretsKeyArn": None,
    "CrmOrigin": None,
    "CrmJwtAudience": "docusign-connector",
    "DocuSignAccountId": "",
    "RefreshScheduleRate": "rate(1 hour)",
    "AlarmTopicArn": "",
    "CrmJwtIssuer": "",
    "CrmJwtJwksUrl": "",
    "DocuSignApiHosts": "*.docusign.net",
    "LogRetentionDays": 30,
    **{name: default for name, default in CONCURRENCY.values()},
}


def function_property(logical_id, name):
    """A function's property, falling back to Globals as SAM does."""
    props = RESOURCES[logical_id]["Properties"]
    return props.get(name, GLOBALS.get(name))


def function_env(logical_id):
    env = dict(GLOBALS.get("Environment", {}).get("Variables", {}))
    env.update(RESOURCES[logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
    return env


def when_set(value):
    """(condition, value) of `!If [Condition, value, !Ref AWS::NoValue]`, else (None, value)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, then, otherwise = value["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}, value
        return condition, then
    return None, value


def contract_variables():
    """The variable names of the contract's configuration table."""
    text = (ROOT / "docs" / "CONTRACT.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def strings(value):
    """Every string inside a value (keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def as_list(value):
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------ table


# CreateTable's request parameters: infra/dynamodb-table.json is one (moto and
# the local stack create the table from it).
CREATE_TABLE_PARAMETERS = {
    "TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
    "BillingMode", "ProvisionedThroughput", "StreamSpecification", "SSESpecification", "Tags",
    "TableClass", "DeletionProtectionEnabled", "WarmThroughput", "ResourcePolicy", "OnDemandThroughput",
}


def test_table_matches_the_create_table_request():
    props = RESOURCES["TokenTable"]["Properties"]
    assert RESOURCES["TokenTable"]["Type"] == "AWS::DynamoDB::Table"
    assert set(TABLE_JSON) <= CREATE_TABLE_PARAMETERS
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode"):
        assert props[key] == TABLE_JSON[key], key
    # Encryption with our key is deployment-only: the emulator's table keeps
    # DynamoDB's default encryption (its KMS key would have to exist first).
    assert "SSESpecification" not in TABLE_JSON


def test_table_is_encrypted_with_the_customer_managed_key():
    sse = RESOURCES["TokenTable"]["Properties"]["SSESpecification"]
    assert sse == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Fn::GetAtt": ["TokenKey", "Arn"]}}


def test_table_is_protected():
    table = RESOURCES["TokenTable"]
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


# ------------------------------------------------------------------ key


def test_token_key_rotates_and_names_no_wildcard_principal():
    key = RESOURCES["TokenKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        principals = list(strings(statement["Principal"]))
        assert principals and "*" not in principals, statement
        assert all(":root" in p for p in principals), statement
    aliases = [r for r in RESOURCES.values() if r["Type"] == "AWS::KMS::Alias"]
    assert [a["Properties"]["TargetKeyId"] for a in aliases] == [{"Ref": "TokenKey"}]


# ------------------------------------------------------------------ functions


def test_one_function_per_binary_built_with_cargo_lambda():
    functions = {k for k, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions == set(FUNCTIONS)
    for logical_id, binary in FUNCTIONS.items():
        resource = RESOURCES[logical_id]
        assert function_property(logical_id, "Runtime") == "provided.al2023", logical_id
        assert function_property(logical_id, "Architectures") == ["arm64"], logical_id
        assert function_property(logical_id, "Handler") == "bootstrap", logical_id
        assert function_property(logical_id, "MemorySize") == 128, logical_id
        assert function_property(logical_id, "Timeout") == TIMEOUTS[binary], logical_id
        assert function_property(logical_id, "LoggingConfig") == {"LogFormat": "JSON"}, logical_id
        assert resource["Metadata"] == {
            "BuildMethod": "rust-cargolambda",
            "BuildProperties": {"Binary": binary},
        }, logical_id
        # CodeUri is the Cargo workspace root (relative to the template).
        code_uri = (TEMPLATE_PATH.parent / function_property(logical_id, "CodeUri")).resolve()
        assert code_uri == ROOT and (code_uri / "Cargo.toml").is_file(), logical_id
        # The API's integrations name the function by this fixed name.
        assert resource["Properties"]["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + binary}


def test_environment_follows_the_contract():
    allowed = contract_variables()
    assert {"DOCUSIGN_SECRET_KEY_CIPHERTEXT", "CRM_JWT_SECRET_CIPHERTEXT", "CRM_ORIGIN"} <= allowed
    callback_url = TEMPLATE["Outputs"]["CallbackUrl"]["Value"]
    for logical_id, binary in FUNCTIONS.items():
        env = function_env(logical_id)
        assert set(env) == EXPECTED_ENV[binary], binary
        assert set(env) <= allowed, binary
        assert env["TOKEN_TABLE"] == {"Ref": "TokenTable"}
        assert env["TOKEN_KEY_ID"] == {"Fn::GetAtt": ["TokenKey", "Arn"]}
        if "DOCUSIGN_REDIRECT_URI" in env:
            assert env["DOCUSIGN_REDIRECT_URI"] == callback_url
    assert callback_url == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/docusign/callback"
    }


def test_no_plaintext_secret_in_environment_or_parameters():
    parameters = TEMPLATE["Parameters"]
    for logical_id in FUNCTIONS:
        env = function_env(logical_id)
        assert "DOCUSIGN_SECRET_KEY" not in env and "CRM_JWT_SECRET" not in env, logical_id
        for name, value in env.items():
            # Every value comes from a parameter, a resource or an intrinsic:
            # no literal at all, so none can be a secret.
            assert isinstance(value, dict), (logical_id, name, value)
            if "SECRET" in name:
                assert name.endswith("_CIPHERTEXT"), name
                condition, value = when_set(value)
                assert set(value) == {"Ref"}, name
                parameter = parameters[value["Ref"]]
                assert parameter.get("NoEcho") is True, name
                if condition is None:
                    assert "Default" not in parameter and parameter["MinLength"] >= 100, name
                else:
                    # Optional (JWKS-only mode): empty, or a ciphertext.
                    assert parameter["Default"] == "", name
                    assert TEMPLATE["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [value, ""]}]}
                    assert not re.fullmatch(parameter["AllowedPattern"], "A" * 99), name
                    assert re.fullmatch(parameter["AllowedPattern"], "A" * 200 + "=="), name
                # The parameter refuses a plain DocuSign secret key (a GUID).
                assert not re.fullmatch(parameter["AllowedPattern"], "0f2f3e7a-1111-2222-3333-444455556666")
    assert {k: v.get("Default") for k, v in parameters.items()} == EXPECTED_PARAMETER_DEFAULTS
    for name, parameter in parameters.items():
        if "secret" in name.lower() and name != "SecretsKeyArn":
            assert name.endswith("Ciphertext") and parameter.get("NoEcho") is True, name


def test_a_deploy_names_the_crm_secret_or_its_identity_provider():
    # A stack with neither would start CRM functions that refuse every caller.
    (assertion,) = TEMPLATE["Rules"]["CrmCallerKeys"]["Assertions"]
    assert assertion["Assert"] == {
        "Fn::Or": [
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "CrmJwtSecretCiphertext"}, ""]}]},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "CrmJwtJwksUrl"}, ""]}]},
        ]
    }


def test_crm_functions_get_the_issuer_and_jwks_only_when_set():
    for logical_id, binary in FUNCTIONS.items():
        env = function_env(logical_id)
        if binary not in CRM_FUNCTIONS:
            assert not {"CRM_JWT_ISSUER", "CRM_JWT_JWKS_URL", "CRM_JWT_SECRET_CIPHERTEXT"} & set(env), binary
            continue
        assert when_set(env["CRM_JWT_ISSUER"]) == ("HasCrmJwtIssuer", {"Ref": "CrmJwtIssuer"})
        assert when_set(env["CRM_JWT_JWKS_URL"]) == ("HasCrmJwtJwksUrl", {"Ref": "CrmJwtJwksUrl"})
        assert env["CRM_JWT_AUDIENCE"] == {"Ref": "CrmJwtAudience"}
    jwks = TEMPLATE["Parameters"]["CrmJwtJwksUrl"]["AllowedPattern"]
    assert re.fullmatch(jwks, "https://idp.example.com/.well-known/jwks.json") and re.fullmatch(jwks, "")
    assert not re.fullmatch(jwks, "http://idp.example.com/jwks")


def test_docusign_api_hosts_reach_every_function_that_calls_docusign():
    for logical_id, binary in FUNCTIONS.items():
        env = function_env(logical_id)
        if binary in ("oauth-callback", "send-envelope", "token-refresh"):
            assert env["DOCUSIGN_API_HOSTS"] == {"Ref": "DocuSignApiHosts"}, binary
    assert function_env("OAuthCallbackFunction")["CRM_ORIGIN"] == {"Ref": "CrmOrigin"}
    assert "Default" not in TEMPLATE["Parameters"]["CrmOrigin"]


# ------------------------------------------------------------------ concurrency and logs


def test_every_function_reserves_its_concurrency_from_a_parameter():
    parameters = TEMPLATE["Parameters"]
    for logical_id, binary in FUNCTIONS.items():
        name, default = CONCURRENCY[binary]
        reserved = RESOURCES[logical_id]["Properties"]["ReservedConcurrentExecutions"]
        condition, value = when_set(reserved)
        assert value == {"Ref": name}, binary
        # 0 means "reserve nothing", not Lambda's "never run".
        assert TEMPLATE["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": name}, "0"]}]}
        assert parameters[name]["Type"] == "Number" and parameters[name]["Default"] == default
        assert parameters[name]["MinValue"] == 0
    defaults = {binary: default for binary, (_, default) in CONCURRENCY.items()}
    # The public callback cannot take what the CRM routes' functions need.
    assert all(defaults["oauth-callback"] < defaults[b] for b in CRM_FUNCTIONS)
    # Lambda keeps 100 of the default account limit of 1,000 unreserved;
    # leave most of the rest to the account's other functions.
    assert sum(defaults.values()) <= 300


def test_every_function_logs_to_its_own_log_group_with_a_retention():
    groups = {k: r for k, r in RESOURCES.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for logical_id, binary in FUNCTIONS.items():
        depends = as_list(RESOURCES[logical_id].get("DependsOn", []))
        (group_id,) = [d for d in depends if d in groups]
        props = groups[group_id]["Properties"]
        assert props["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${AWS::StackName}-" + binary}, binary
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}, binary
    retention = TEMPLATE["Parameters"]["LogRetentionDays"]
    assert retention["Default"] == 30 and 30 in retention["AllowedValues"]
    # Every log group, the API's access logs included, has the retention.
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values())


# ------------------------------------------------------------------ IAM


def grants(logical_id):
    found = set()
    for policy in as_list(RESOURCES[logical_id]["Properties"]["Policies"]):
        assert isinstance(policy, dict) and "Statement" in policy, (logical_id, policy)
        for statement in as_list(policy["Statement"]):
            assert statement["Effect"] == "Allow"
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement
            condition = statement.get("Condition", {})
            context_key, values = None, None
            for resource in as_list(statement["Resource"]):
                name = RESOURCE_NAMES.get(json.dumps(resource))
                assert name, f"{logical_id}: unexpected resource {resource}"
                if name in CONTEXT_KEYS:
                    equals = condition.get("StringEquals", {})
                    (kms_key, allowed), = equals.items()
                    context_key = kms_key.removeprefix("kms:EncryptionContext:")
                    values = frozenset(as_list(allowed))
                    keys = condition["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"]
                    assert set(keys) == CONTEXT_KEYS[name], statement
                    assert set(condition) == {"StringEquals", "ForAllValues:StringEquals"}, statement
                else:
                    assert not condition, statement
                for action in as_list(statement["Action"]):
                    found.add((action, name, context_key, values))
    return found


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_each_function_holds_exactly_its_grants(logical_id):
    assert grants(logical_id) == EXPECTED_GRANTS[FUNCTIONS[logical_id]]


def test_no_wildcard_action_or_resource():
    for logical_id in FUNCTIONS:
        for policy in as_list(RESOURCES[logical_id]["Properties"]["Policies"]):
            for statement in as_list(policy["Statement"]):
                for text in strings([statement["Action"], statement["Resource"]]):
                    assert "*" not in text, (logical_id, statement)


# ------------------------------------------------------------------ API


def api_operations():
    api = RESOURCES["HttpApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    operations = {}
    for path, item in api["Properties"]["DefinitionBody"]["paths"].items():
        for method, operation in item.items():
            operations[(method.upper(), path)] = operation
    return operations


def test_every_route_reaches_its_function_with_payload_2():
    operations = api_operations()
    assert set(operations) == set(ROUTES)
    uri = re.compile(
        r"arn:\$\{AWS::Partition\}:apigateway:\$\{AWS::Region\}:lambda:path/2015-03-31/functions/"
        r"arn:\$\{AWS::Partition\}:lambda:\$\{AWS::Region\}:\$\{AWS::AccountId\}:function:"
        r"\$\{AWS::StackName\}-(?P<binary>[a-z-]+)/invocations"
    )
    for route, binary in ROUTES.items():
        integration = operations[route]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", route
        assert integration["httpMethod"] == "POST", route
        assert integration["payloadFormatVersion"] == "2.0", route
        match = uri.fullmatch(integration["uri"]["Fn::Sub"])
        assert match and match["binary"] == binary, (route, integration["uri"])


def test_every_route_may_invoke_its_function_and_nothing_else():
    by_function = {v: k for k, v in FUNCTIONS.items()}
    permissions = {}
    for resource in RESOURCES.values():
        if resource["Type"] != "AWS::Lambda::Permission":
            continue
        props = resource["Properties"]
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert props["Action"] == "lambda:InvokeFunction"
        arn = props["SourceArn"]["Fn::Sub"]
        prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*/"
        assert arn.startswith(prefix), arn
        method, path = arn.removeprefix(prefix).split("/", 1)
        permissions[(method, "/" + path)] = props["FunctionName"]
    assert permissions == {route: {"Ref": by_function[b]} for route, b in ROUTES.items()}


def test_api_cors_and_throttling():
    props = RESOURCES["HttpApi"]["Properties"]
    cors = props["CorsConfiguration"]
    assert cors["AllowOrigins"] == [{"Ref": "CrmOrigin"}]
    assert set(cors["AllowMethods"]) == {"GET", "POST", "DELETE", "OPTIONS"}
    assert {h.lower() for h in cors["AllowHeaders"]} == {"authorization", "content-type", "idempotency-key"}
    assert cors.get("AllowCredentials") in (None, False)
    throttling = props["DefaultRouteSettings"]
    assert throttling["ThrottlingBurstLimit"] > 0 and throttling["ThrottlingRateLimit"] > 0


def test_public_routes_are_throttled_below_the_crm_routes():
    props = RESOURCES["HttpApi"]["Properties"]
    default = props["DefaultRouteSettings"]
    settings = props["RouteSettings"]
    routes = set(api_operations())
    public = {f"{m} {p}" for m, p in PUBLIC_ROUTES & routes}
    assert "GET /docusign/callback" in public
    # Only routes that exist (a stage setting for a missing route fails the deploy).
    assert set(settings) <= {f"{m} {p}" for m, p in routes}
    for route in public:
        assert settings[route]["ThrottlingRateLimit"] < default["ThrottlingRateLimit"], route
        assert settings[route]["ThrottlingBurstLimit"] < default["ThrottlingBurstLimit"], route
    for route, limits in settings.items():
        if route not in public:
            # A CRM route is never throttled below a public one.
            assert all(limits["ThrottlingRateLimit"] >= settings[p]["ThrottlingRateLimit"] for p in public), route


def test_access_logs_are_json_without_query_string_or_headers():
    props = RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]
    assert props["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    assert RESOURCES["HttpApiAccessLogGroup"]["Type"] == "AWS::Logs::LogGroup"
    fields = json.loads(props["Format"])
    assert {"requestId", "routeKey", "status"} <= set(fields)
    variables = re.findall(r"\$context\.[A-Za-z0-9_.]+", props["Format"])
    assert len(variables) == len(fields)
    for variable in variables:
        lowered = variable.lower()
        # $context.path and requestUri-like variables would be safe only
        # without the query; routeKey names the route without either.
        for forbidden in ("query", "header", "useragent", "uri", "path", "requestoverride", "authorizer.claims", "authorizer.jwt"):
            assert forbidden not in lowered, variable
    assert "$request." not in props["Format"] and "$input" not in props["Format"]


def test_the_jwt_authorizer_guards_the_crm_routes_only_when_an_identity_provider_is_set():
    body = RESOURCES["HttpApi"]["Properties"]["DefinitionBody"]
    condition = TEMPLATE["Conditions"]["UseJwtAuthorizer"]
    assert condition == {
        "Fn::And": [
            {"Condition": "HasCrmJwtIssuer"},
            {"Condition": "HasCrmJwtJwksUrl"},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "CrmJwtAudience"}, ""]}]},
        ]
    }
    components_if = body["components"]["Fn::If"]
    assert components_if[0] == "UseJwtAuthorizer" and components_if[2] == {"Ref": "AWS::NoValue"}
    scheme = components_if[1]["securitySchemes"]["CrmJwt"]
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt"
    assert authorizer["identitySource"] == "$request.header.Authorization"
    assert authorizer["jwtConfiguration"] == {"issuer": {"Ref": "CrmJwtIssuer"}, "audience": [{"Ref": "CrmJwtAudience"}]}
    for route, operation in api_operations().items():
        if route in PUBLIC_ROUTES:
            assert "security" not in operation, route
        else:
            assert operation["security"] == {
                "Fn::If": ["UseJwtAuthorizer", [{"CrmJwt": []}], {"Ref": "AWS::NoValue"}]
            }, route


def test_api_functions_have_no_event_of_their_own():
    # Routes live only in the API's body: a function event would add a
    # second definition and make the API depend on the function.
    for logical_id, binary in FUNCTIONS.items():
        events = RESOURCES[logical_id]["Properties"].get("Events", {})
        types = {e["Type"] for e in events.values()}
        assert types <= ({"Schedule", "ScheduleV2"} if binary == "token-refresh" else set()), logical_id


# ------------------------------------------------------------------ schedule and alarms


def test_token_refresh_runs_on_the_schedule():
    events = RESOURCES["TokenRefreshFunction"]["Properties"]["Events"]
    schedules = [e for e in events.values() if e["Type"] in ("Schedule", "ScheduleV2")]
    assert len(schedules) == 1
    props = schedules[0]["Properties"]
    expression = props.get("Schedule", props.get("ScheduleExpression"))
    assert expression == {"Ref": "RefreshScheduleRate"}
    assert TEMPLATE["Parameters"]["RefreshScheduleRate"]["Default"] == "rate(1 hour)"


def test_a_failing_sweep_raises_an_alarm():
    alarms = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    errors = [
        a for a in alarms
        if a.get("Namespace") == "AWS/Lambda" and a.get("MetricName") == "Errors"
        and a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "TokenRefreshFunction"}}]
    ]
    failed = [
        a for a in alarms
        if a.get("Namespace") == "DocuSignConnector" and a.get("MetricName") == "failed"
        and a["Dimensions"] == [{"Name": "Function", "Value": "token-refresh"}]
    ]
    assert errors and failed
    topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for alarm in errors + failed:
        assert alarm["AlarmActions"] == topic


def test_a_rejected_client_secret_raises_an_alarm_on_the_first_datapoint():
    alarms = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    (alarm,) = [
        a for a in alarms
        if any("ClientSecretRejected" in q.get("Expression", "") for q in a.get("Metrics", []))
    ]
    (query,) = alarm["Metrics"]
    # Whatever function emits it, with whatever dimensions.
    assert query["Expression"] == "SELECT SUM(ClientSecretRejected) FROM DocuSignConnector"
    assert query["ReturnData"] is True
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["EvaluationPeriods"] == 1 and alarm["DatapointsToAlarm"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def test_outputs():
    outputs = TEMPLATE["Outputs"]
    assert set(outputs) >= {"ApiUrl", "CallbackUrl", "TokenTableName", "TokenKeyArn"}
    assert outputs["TokenTableName"]["Value"] == {"Ref": "TokenTable"}
    assert outputs["TokenKeyArn"]["Value"] == {"Fn::GetAtt": ["TokenKey", "Arn"]}


# ------------------------------------------------------------------ dependencies


def translate(template, monkeypatch):
    """The CloudFormation template SAM deploys (offline: no AWS call)."""
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    template = copy.deepcopy(template)
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/key"

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(template, {}, NoManagedPolicies())


def dependencies(resources):
    names = set(resources)
    graph = {}
    for name, resource in resources.items():
        deps = set(as_list(resource.get("DependsOn", [])))

        def walk(value):
            if isinstance(value, dict):
                for k, v in value.items():
                    if k == "Ref" and isinstance(v, str):
                        deps.add(v)
                    elif k == "Fn::GetAtt":
                        deps.add((v.split(".")[0] if isinstance(v, str) else v[0]))
                    elif k == "Fn::Sub":
                        text = v if isinstance(v, str) else v[0]
                        local = set(v[1]) if isinstance(v, list) else set()
                        for ref in re.findall(r"\$\{([^!}][^}]*)\}", text):
                            if ref.split(".")[0] not in local:
                                deps.add(ref.split(".")[0])
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(resource)
        graph[name] = deps & names - {name}
    return graph


def find_cycle(graph):
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return stack + [node, dep]
            if dep not in state:
                cycle = visit(dep, stack + [node])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_no_circular_dependency_after_the_sam_transform(monkeypatch):
    # cfn-lint's E3004 skips cycles through SAM resources, so check the
    # transformed template here (the redirect URI references the API).
    resources = translate(TEMPLATE, monkeypatch)["Resources"]
    assert find_cycle(dependencies(resources)) is None


def test_the_cycle_check_finds_the_cycle_a_function_event_would_make(monkeypatch):
    template = copy.deepcopy(TEMPLATE)
    template["Resources"]["ConsentStartFunction"]["Properties"]["Events"] = {
        "Api": {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "HttpApi"}, "Path": "/x", "Method": "GET"}}
    }
    resources = translate(template, monkeypatch)["Resources"]
    assert find_cycle(dependencies(resources)) is not None

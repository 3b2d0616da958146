#!/usr/bin/env python3
"""Creates the local AWS resources of the connector in an emulator (moto).

    .venv/bin/python scripts/local_aws.py [--table-file infra/dynamodb-table.json]

Reads the endpoint from AWS_ENDPOINT_URL (set by scripts/moto.sh) and refuses
to run without it, so it never touches a real AWS account. Creates the
DynamoDB table from the CreateTable request in infra/dynamodb-table.json
(same name, keys and indexes as deployed) and a symmetric KMS key with the
alias `alias/docusign-connector-local`. Idempotent: what exists is reused.

Prints shell assignments for `eval`:
    TOKEN_TABLE='docusign-connector-tokens'
    TOKEN_KEY_ID='arn:aws:kms:...'
"""

import argparse
import json
import os
import shlex
import sys

import boto3
from botocore.exceptions import ClientError

KEY_ALIAS = "alias/docusign-connector-local"


def create_table(dynamodb, request):
    name = request["TableName"]
    try:
        dynamodb.create_table(**request)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )
    return name


def create_key(kms):
    try:
        return kms.describe_key(KeyId=KEY_ALIAS)["KeyMetadata"]["Arn"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "NotFoundException":
            raise
    arn = kms.create_key(
        Description="docusign-connector local tokens (emulator only)",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
    )["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=arn)
    return arn


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--table-file", default=os.path.join(root, "infra", "dynamodb-table.json")
    )
    args = parser.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint.startswith(("http://127.", "http://localhost")):
        sys.exit("local_aws.py: AWS_ENDPOINT_URL must name a local emulator, got %r" % endpoint)
    region = os.environ.get("AWS_REGION", "us-east-1")
    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        region_name=region,
    )
    with open(args.table_file, encoding="utf-8") as f:
        request = json.load(f)

    table = create_table(session.client("dynamodb", endpoint_url=endpoint), request)
    key = create_key(session.client("kms", endpoint_url=endpoint))
    print("TOKEN_TABLE=%s" % shlex.quote(table))
    print("TOKEN_KEY_ID=%s" % shlex.quote(key))


if __name__ == "__main__":
    main()

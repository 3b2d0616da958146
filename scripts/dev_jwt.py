#!/usr/bin/env python3
"""DEVELOPMENT ONLY: mints the CRM's HS256 JWTs for local runs.

    python3 scripts/dev_jwt.py --role admin [--tenant demo-tenant] [--sub demo-admin]

The secret is read from CRM_JWT_SECRET (the value scripts/run-local.sh gives
the functions); the claims are the contract's: tenant, sub, role, aud, exp.
In a real deployment the CRM signs these tokens; nothing in the functions
knows this script exists. Standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time

DEFAULT_AUDIENCE = "docusign-connector"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(secret: str, tenant: str, sub: str, role: str,
         audience: str = DEFAULT_AUDIENCE, ttl_seconds: int = 12 * 3600) -> str:
    """An HS256 JWT with the claims tenant, sub, role, aud, iat and exp."""
    if role not in ("admin", "user"):
        raise ValueError("role must be admin or user")
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "tenant": tenant,
        "sub": sub,
        "role": role,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode("utf-8"))
        for part in (header, claims)
    )
    signature = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


def main() -> None:
    parser = argparse.ArgumentParser(description="DEVELOPMENT ONLY: mint a CRM JWT (HS256)")
    parser.add_argument("--role", choices=("admin", "user"), default="admin")
    parser.add_argument("--tenant", default="demo-tenant")
    parser.add_argument("--sub", default=None, help="default: demo-<role>")
    parser.add_argument("--audience", default=os.environ.get("CRM_JWT_AUDIENCE") or DEFAULT_AUDIENCE)
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until exp")
    args = parser.parse_args()
    secret = os.environ.get("CRM_JWT_SECRET", "")
    if not secret:
        sys.exit("dev_jwt.py: set CRM_JWT_SECRET to the secret the functions use")
    print(mint(secret, args.tenant, args.sub or "demo-" + args.role, args.role, args.audience, args.ttl))


if __name__ == "__main__":
    main()

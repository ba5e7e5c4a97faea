"""The IAM side of the setup: the external id, the trust and permission policies, the ARN checks.

Pure functions: the pages, the docs page's examples and the error hints all render the same
policies from here.
"""

from __future__ import annotations

import json
import re
import secrets

ACTIONS = ("cloudwatch:ListMetrics", "cloudwatch:GetMetricData")
ROLE_SESSION_NAME = "doow-usage-sync"
EXTERNAL_ID_PREFIX = "doow-"
APP_ACCOUNT_PLACEHOLDER = "DOOW_AWS_ACCOUNT_ID"
EXTERNAL_ID_PLACEHOLDER = "EXTERNAL_ID_SHOWN_BY_DOOW"
ROLE_ARN_RE = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
ACCESS_KEY_ID_RE = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
# AWS: 2-1224 characters of [\w+=,.@:/-]; ours are "doow-" + 40 hex digits.
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


def app_account_id() -> str:
    """The AWS account this Doow runs in (DOOW_AWS_ACCOUNT_ID), when the operator configured it."""
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - the connector used outside Django
        return ""
    value = str(getattr(settings, "DOOW_AWS_ACCOUNT_ID", "") or "")
    return value if re.fullmatch(r"\d{12}", value) else ""


def generate_external_id(seed: str = "") -> str:
    """From the workspace seed when given (the same on every try, so the admin can set up the
    role between two tries); random otherwise (a connector used outside the app)."""
    body = seed[:40] if len(seed) >= 32 else secrets.token_hex(20)
    return f"{EXTERNAL_ID_PREFIX}{body}"


def account_of_arn(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else ""


def permission_policy() -> str:
    return _json(
        {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "DoowReadBedrockUsage", "Effect": "Allow", "Action": list(ACTIONS), "Resource": "*"}],
        }
    )


def trust_policy(external_id: str = "", app_account: str = "") -> str:
    """Lets the app's AWS account assume the role, only with this integration's external id."""
    return _json(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "AWS": f"arn:aws:iam::{app_account or app_account_id() or APP_ACCOUNT_PLACEHOLDER}:root"
                    },
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": external_id or EXTERNAL_ID_PLACEHOLDER}},
                }
            ],
        }
    )


def _json(document: dict) -> str:
    return json.dumps(document, indent=2)

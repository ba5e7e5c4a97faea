"""The credential: offline checks, the generated external id, and the setup steps shown to the admin.

Two kinds: a role Doow assumes (`role_arn` + the `external_id` Doow generated), or an IAM
user's key pair (`access_key_id` + `secret_access_key`). No function here calls AWS.
"""

from __future__ import annotations

from collections.abc import Mapping

from integrations.providers.aws_bedrock import iam
from integrations.providers.base import ConfigurationError, SetupStep

ROLE_HELP = "Create a role for Doow (the setup steps give its trust and permission policies) and paste its ARN."


def prepare(credential: Mapping[str, str], *, previous: Mapping[str, str] | None, seed: str) -> dict[str, str]:
    prepared = {k: v for k, v in credential.items() if k != "external_id"}  # never the admin's choice
    if prepared.get("access_key_id") or prepared.get("secret_access_key"):
        return prepared
    # Keep the id the role already trusts when rotating; a new one only for a new integration.
    prepared["external_id"] = (previous or {}).get("external_id") or iam.generate_external_id(seed)
    return prepared


def check(credential: Mapping[str, str]) -> None:
    role = (credential.get("role_arn") or "").strip()
    key_id = (credential.get("access_key_id") or "").strip()
    secret = (credential.get("secret_access_key") or "").strip()
    if role and (key_id or secret):
        raise ConfigurationError("Enter a role ARN or an access key, not both.", hint=ROLE_HELP, field="role_arn")
    if role:
        return _check_role(role, credential.get("external_id") or "")
    if not key_id and not secret:
        raise ConfigurationError(
            "Enter the role ARN Doow should assume, or an access key id and secret.", hint=ROLE_HELP
        )
    if iam.ACCESS_KEY_ID_RE.match(secret) or (len(key_id) == 40 and not iam.ACCESS_KEY_ID_RE.match(key_id)):
        raise ConfigurationError(
            "The access key id and the secret access key look swapped.",
            hint="The access key id starts with AKIA and has 20 characters; the secret has 40.",
            field="access_key_id",
        )
    if not key_id or not secret:
        missing, field = (
            ("access key id", "access_key_id") if not key_id else ("secret access key", "secret_access_key")
        )
        raise ConfigurationError(f"Enter the {missing} too.", field=field)
    if key_id.startswith("ASIA") and iam.ACCESS_KEY_ID_RE.match(key_id):
        raise ConfigurationError(
            "This is a temporary access key (ASIA…); it expires within hours and needs a session token.",
            hint="Use a role (recommended), or a long-lived access key (AKIA…) of an IAM user.",
            field="access_key_id",
        )
    if not iam.ACCESS_KEY_ID_RE.match(key_id):
        raise ConfigurationError(
            "This does not look like an AWS access key id (AKIA followed by 16 letters and digits).",
            field="access_key_id",
        )
    if len(secret) != 40 or any(c.isspace() for c in secret):
        raise ConfigurationError(
            "The secret access key should be 40 characters without spaces; paste it again.", field="secret_access_key"
        )


def _check_role(role: str, external_id: str) -> None:
    if ":user/" in role or ":root" in role:
        raise ConfigurationError(
            "This is the ARN of an IAM user or account, not of a role.", hint=ROLE_HELP, field="role_arn"
        )
    if ":assumed-role/" in role:
        raise ConfigurationError(
            "This is an assumed-role session ARN (arn:aws:sts::…); enter the role's own ARN, arn:aws:iam::…:role/….",
            field="role_arn",
        )
    if not iam.ROLE_ARN_RE.match(role):
        raise ConfigurationError(
            "This does not look like a role ARN (arn:aws:iam::123456789012:role/Name).",
            hint=ROLE_HELP,
            field="role_arn",
        )
    if not iam.EXTERNAL_ID_RE.match(external_id):
        raise ConfigurationError(
            "The external id is missing; Doow generates it when the integration is saved.",
            hint="Add the integration through the page or `manage.py connect`, which generate it.",
        )


def setup_steps(credential: Mapping[str, str]) -> list[SetupStep]:
    permissions = SetupStep(
        "Allow reading Bedrock's CloudWatch metrics",
        "Attach this permission policy to the role (or to the IAM user of an access key). It reads "
        "metrics only; it cannot invoke models or see prompts.",
        iam.permission_policy(),
    )
    if credential.get("access_key_id"):
        return [permissions]
    external_id = credential.get("external_id", "")
    if external_id:
        about_id = f"Your external id is {external_id}. "
    else:
        about_id = (
            f"Replace {iam.EXTERNAL_ID_PLACEHOLDER} with your external id: Doow generates it, and the first "
            "Verify, refused while the role does not trust Doow yet, shows it with the exact policy. "
        )
    return [
        SetupStep(
            "Create a role Doow can assume",
            "In IAM → Roles → Create role → Custom trust policy, paste this policy. "
            + about_id
            + (
                ""
                if iam.app_account_id()
                else f"Replace {iam.APP_ACCOUNT_PLACEHOLDER} with the id of the AWS account this Doow runs in (its "
                "operator knows it and can set DOOW_AWS_ACCOUNT_ID; a failed Test connection names it)."
            ),
            iam.trust_policy(external_id),
        ),
        permissions,
        SetupStep(
            "Paste the role ARN and your regions",
            "Enter the new role's ARN and the regions where you call Bedrock (CloudWatch keeps metrics per region).",
        ),
    ]

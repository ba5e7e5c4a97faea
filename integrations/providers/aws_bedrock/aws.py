"""boto3 plumbing: sessions (assumed role or key pair), clients, and botocore errors → our errors.

boto3 does its own HTTP (SigV4, retries, pagination tokens), so the HTTP seam is not used for
the calls themselves; its rules are: timeouts and the retry budget come from the HttpClient,
`endpoint_url` is vetted by `check_endpoint` first, each API call counts in `http.calls`,
failures map to the typed errors, and no secret reaches a message.

boto3 also resolves host names itself. For a custom `endpoint_url` its connections are made
the seam's way (integrations.egress): each new connection resolves the name once, vets every
address and connects to one of them, while TLS (SNI, certificate check), the Host header and
the SigV4 signature keep the endpoint's host name. AWS's own endpoints are left alone (a VPC
endpoint legitimately resolves them to private addresses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from integrations import egress
from integrations.http import check_endpoint, redact
from integrations.providers.aws_bedrock.iam import (
    ACTIONS,
    APP_ACCOUNT_PLACEHOLDER,
    ROLE_SESSION_NAME,
    account_of_arn,
    app_account_id,
)
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    PermissionDenied,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
)

if TYPE_CHECKING:
    from integrations.http import HttpClient

SessionFactory = Callable[..., Any]  # boto3.session.Session or a test double with .client()
THROTTLING = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "AuthFailure",
}
SERVER_ERRORS = {"InternalFailure", "InternalError", "InternalServiceError", "ServiceUnavailable"}
APP_CREDENTIALS_HINT = (
    "Operator: give this Doow server AWS credentials of its own through the standard AWS chain "
    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, an EC2 instance "
    "profile, ECS task role or EKS IRSA); Doow assumes customers' roles with them."
)
PERMISSIONS_HINT = "Allow " + " and ".join(ACTIONS) + ' on "Resource": "*" in the policy of {who}.'


@dataclass
class Aws:
    """An authenticated place to make clients from, and what redaction must hide."""

    session: Any
    settings_endpoint: str
    http: HttpClient
    mode: str  # "app" (Doow's own), "role" (assumed) or "keys": whose credentials a rejection is about
    secrets: list[str] = field(default_factory=list)
    account_id: str = ""
    arn: str = ""

    def client(self, service: str, region: str) -> Any:
        return make_client(self.session, service, region, endpoint_url=self.settings_endpoint, http=self.http)

    def call(self, client: Any, operation: str, action: str, *, region: str = "", **params: Any) -> dict[str, Any]:
        """One API call; botocore failures leave as typed errors naming `action`."""
        try:
            return getattr(client, operation)(**params)
        except (BotoCoreError, ClientError, ResponseParserError) as exc:  # the parser's is no BotoCoreError
            raise translate(exc, action=action, region=region, mode=self.mode, secrets=self.all_secrets()) from None
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            # botocore's XML parser (STS) fails this way on a body that is not AWS's, e.g. HTML.
            raise translate(exc, action=action, region=region) from None

    def all_secrets(self) -> list[str]:
        return [*self.secrets, *self.http.secrets]


def make_client(session: Any, service: str, region: str, *, endpoint_url: str, http: HttpClient) -> Any:
    if endpoint_url:
        # Vetted on every use, not only when saved: DNS may change after the form checked it.
        check_endpoint(endpoint_url, allow_private=http.allow_private)
    config = Config(
        connect_timeout=min(10.0, http.timeout),
        read_timeout=http.timeout,
        retries={"mode": "standard", "total_max_attempts": max(1, http.max_attempts)},
        user_agent_extra="doow-usage-sync",
    )
    client = session.client(service, region_name=region, endpoint_url=endpoint_url or None, config=config)
    if endpoint_url:
        _pin_connections(client, allow_private=http.allow_private)

    def count(**_: Any) -> None:
        http.calls += 1  # SyncRun.provider_calls counts AWS API calls too

    client.meta.events.register("before-call", count)
    return client


def _pin_connections(client: Any, *, allow_private: bool) -> None:
    """Make the client's connections resolve once, vet and connect to the vetted address.

    botocore offers no public hook for its connection pools, so this reaches its URLLib3Session
    (client._endpoint.http_session, stable since botocore 1.11). If that ever moves, a custom
    endpoint is refused rather than used unpinned; the test suite notices first.
    """
    try:
        manager = client._endpoint.http_session._manager
    except AttributeError:
        manager = None
    if manager is None or not hasattr(manager, "pool_classes_by_scheme"):
        raise ConfigurationError(
            "This server's botocore cannot be made to connect to vetted addresses only, so a custom endpoint URL is refused.",
            hint="Leave Endpoint URL empty, or install the botocore version in requirements.txt.",
            field="endpoint_url",
        )
    egress.pin_pool_manager(manager, allow_private=allow_private)


def translate(
    exc: Exception, *, action: str, region: str = "", mode: str = "keys", secrets: Iterable[str] = ()
) -> ProviderError:
    """A botocore failure as one of our errors; `mode` says whose credentials were used:
    "app" (Doow's own, to assume a role), "role" (the assumed role) or "keys" (the customer's)."""
    where = f" in {region}" if region else ""
    if isinstance(exc, HTTPClientError) and isinstance(exc.kwargs.get("error"), ProviderError):
        return exc.kwargs["error"]  # a vetting refusal from a pinned connection (egress.vet)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        code = str(error.get("Code", "") or "")
        message = redact(str(error.get("Message", "") or code or "no message"), secrets)[:500]
        status = meta.get("HTTPStatusCode")
        kwargs: dict[str, Any] = {"http_status": status, "request_id": str(meta.get("RequestId", "") or "")[:200]}
        if code in THROTTLING:
            return RateLimited(f"AWS is throttling {action}{where}: {message}", **kwargs)
        if code in ACCESS_DENIED:
            return _access_denied(action, where, message, mode, kwargs)
        if code in BAD_CREDENTIALS:
            return _bad_credentials(code, action, where, message, mode, kwargs)
        if code in SERVER_ERRORS or (isinstance(status, int) and status >= 500):
            return ProviderUnavailable(f"AWS had a server error on {action}{where}: {message}", **kwargs)
        return ProviderResponseError(f"AWS refused {action}{where} ({code or 'no code'}): {message}", **kwargs)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return ConfigurationError(
            "This Doow server has no usable AWS credentials of its own, which it needs to assume your role.",
            hint=APP_CREDENTIALS_HINT,
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        kind = "Timed out" if "timeout" in type(exc).__name__.lower() else "Could not connect"
        return NetworkError(f"{kind} talking to AWS ({action}{where}).")
    return ProviderResponseError(f"AWS answered {action}{where} with something unreadable ({type(exc).__name__}).")


def _access_denied(action: str, where: str, message: str, mode: str, kwargs: dict[str, Any]) -> ProviderError:
    if action == "sts:AssumeRole":
        return PermissionDenied(
            f"AWS refused to let Doow assume the role (sts:AssumeRole): {message}",
            hint="Check the role ARN, and that the role's trust policy allows Doow's AWS account to call "
            "sts:AssumeRole with this integration's external id (see the setup steps).",
            **kwargs,
        )
    who = "the role" if mode == "role" else "the IAM user that owns the access key"
    return PermissionDenied(
        f"AWS denied {action}{where}: {message}",
        hint=f"{who.capitalize()} lacks {action}. "
        + PERMISSIONS_HINT.format(who=who)
        + " A service control policy or permissions boundary can also deny it.",
        **kwargs,
    )


def _bad_credentials(
    code: str, action: str, where: str, message: str, mode: str, kwargs: dict[str, Any]
) -> ProviderError:
    if mode == "app":
        return ConfigurationError(
            f"AWS rejected this Doow server's own credentials ({code}) while assuming your role: {message}",
            hint=APP_CREDENTIALS_HINT,
            **kwargs,
        )
    if mode == "role":
        return CredentialError(
            f"AWS rejected the assumed role's credentials on {action}{where} ({code}): {message}",
            hint="If this region is an opt-in region, enable it for the account or remove it from Regions; "
            "otherwise the next sync assumes the role again.",
            **kwargs,
        )
    return CredentialError(
        f"AWS rejected the access key on {action}{where} ({code}): {message}",
        hint="The access key is deleted, deactivated or mistyped (or the region is an opt-in region not "
        "enabled for the account). Create a new access key for the IAM user, or switch to a role, and rotate.",
        **kwargs,
    )


# ---------------------------------------------------------------- sessions
def open_session(
    factory: SessionFactory,
    credential: Mapping[str, str],
    *,
    endpoint: str,
    http: HttpClient,
    region: str,
    duration: int,
) -> Aws:
    """The customer's side: the key pair as given, or the role assumed with Doow's own
    credentials (boto3's default chain) and the integration's external id."""
    role = (credential.get("role_arn") or "").strip()
    if not role:
        key_id = (credential.get("access_key_id") or "").strip()
        secret = (credential.get("secret_access_key") or "").strip()
        if not key_id or not secret:
            raise ConfigurationError(
                "The AWS role ARN or access key is missing.",
                hint="Rotate the credential: enter a role ARN or an access key pair.",
            )
        session = factory(aws_access_key_id=key_id, aws_secret_access_key=secret)
        return Aws(session, endpoint, http, mode="keys", secrets=[secret])
    external_id = credential.get("external_id") or ""
    try:
        base = factory()  # Doow's own credentials: env, profile, instance role…
    except BotoCoreError:
        raise ConfigurationError("This Doow server's AWS configuration is broken.", hint=APP_CREDENTIALS_HINT) from None
    app = Aws(base, endpoint, http, mode="app")
    sts = app.client("sts", region)
    try:
        response = app.call(
            sts, "assume_role", "sts:AssumeRole",
            RoleArn=role, RoleSessionName=ROLE_SESSION_NAME, ExternalId=external_id, DurationSeconds=duration,
        )  # fmt: skip
    except PermissionDenied as error:
        error.hint = _trust_hint(app, sts, role, external_id)
        raise
    creds = response.get("Credentials") or {}
    given = [creds.get(k) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
    parts = [p for p in given if isinstance(p, str) and p]
    if len(parts) != len(given):
        raise ProviderResponseError("STS AssumeRole returned no credentials.")
    session = factory(aws_access_key_id=parts[0], aws_secret_access_key=parts[1], aws_session_token=parts[2])
    aws = Aws(session, endpoint, http, mode="role", secrets=[parts[1], parts[2]])
    aws.arn = str((response.get("AssumedRoleUser") or {}).get("Arn") or "")
    aws.account_id = account_of_arn(aws.arn) or account_of_arn(role)
    return aws


def _trust_hint(app: Aws, sts: Any, role: str, external_id: str) -> str:
    account = ""
    try:  # best effort: name Doow's own account so the admin can paste the exact policy
        account = str(app.call(sts, "get_caller_identity", "sts:GetCallerIdentity").get("Account") or "")
    except ProviderError:
        pass
    principal = f"arn:aws:iam::{account or app_account_id() or APP_ACCOUNT_PLACEHOLDER}:root"
    return (
        f"Check the role ARN ({role}) and that its trust policy allows {principal} to call sts:AssumeRole "
        f'with the condition "StringEquals": {{"sts:ExternalId": "{external_id}"}}. '
        "The full trust policy is in the setup steps."
    )

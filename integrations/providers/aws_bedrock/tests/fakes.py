"""Fakes for what moto cannot do: a Stubber-backed session factory (AWS error codes, paging,
partial data) and a local endpoint (a proxy's HTML page, a bare 5xx, a server that never answers)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import boto3
from botocore.stub import Stubber

from integrations.providers.aws_bedrock.tests.support import (
    CUSTOMER_ACCOUNT,
    HOUR,
    KEY_ACCOUNT,
    KEY_ID,
    SECRET,
)


# ---------------------------------------------------------------- Stubber
class StubbedAws:
    """A session factory whose sessions hand out Stubber-backed clients (one per service).

    `calls` records the keyword arguments of every session made: Doow's own (no arguments),
    an assumed role's or a key pair's.
    """

    def __init__(self) -> None:
        kwargs = {"region_name": "us-east-1", "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET}
        self.clients = {s: boto3.client(s, **kwargs) for s in ("sts", "cloudwatch", "bedrock")}
        self.stubs = {s: Stubber(c) for s, c in self.clients.items()}
        for stub in self.stubs.values():
            stub.activate()
        self.sessions: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> StubbedAws:
        self.sessions.append(kwargs)
        return self

    def client(self, service: str, **_: Any) -> Any:
        return self.clients[service]

    @property
    def sts(self) -> Stubber:
        return self.stubs["sts"]

    @property
    def cloudwatch(self) -> Stubber:
        return self.stubs["cloudwatch"]

    @property
    def bedrock(self) -> Stubber:
        return self.stubs["bedrock"]

    def error(self, service: str, operation: str, code: str, status: int, message: str = "") -> None:
        self.stubs[service].add_client_error(
            operation, service_error_code=code, service_message=message or code, http_status_code=status,
            response_meta={"RequestId": "req-0123"},
        )  # fmt: skip

    def caller(self, account: str = KEY_ACCOUNT) -> None:
        self.sts.add_response(
            "get_caller_identity",
            {"Account": account, "Arn": f"arn:aws:iam::{account}:user/doow", "UserId": "AIDAEXAMPLE"},
        )

    def assume_role(self) -> None:
        self.sts.add_response(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": "ASIAEXAMPLEEXAMPLE00",
                    "SecretAccessKey": "tmp-secret-" + "s" * 29,
                    "SessionToken": "tmp-session-token-" + "t" * 60,
                    "Expiration": datetime.now(UTC) + HOUR,
                },
                "AssumedRoleUser": {
                    "AssumedRoleId": "AROAEXAMPLE:doow-usage-sync",
                    "Arn": f"arn:aws:sts::{CUSTOMER_ACCOUNT}:assumed-role/DoowUsageRead/doow-usage-sync",
                },
            },
        )

    def models(self, *model_ids: str, next_token: str | None = None) -> None:
        body: dict[str, Any] = {
            "Metrics": [
                {
                    "Namespace": "AWS/Bedrock",
                    "MetricName": "Invocations",
                    "Dimensions": [{"Name": "ModelId", "Value": m}],
                }
                for m in model_ids
            ]
        }
        if next_token:
            body["NextToken"] = next_token
        self.cloudwatch.add_response("list_metrics", body)

    def mantle(self, *model_ids: str, dimension: str = "ModelId") -> None:
        """One ListMetrics page of AWS/BedrockMantle's Inferences at the Model level."""
        self.cloudwatch.add_response(
            "list_metrics",
            {
                "Metrics": [
                    {
                        "Namespace": "AWS/BedrockMantle",
                        "MetricName": "Inferences",
                        "Dimensions": [{"Name": dimension, "Value": m}],
                    }
                    for m in model_ids
                ]
            },
        )

    def data(self, results: list[dict[str, Any]], next_token: str | None = None, expected: dict | None = None) -> None:
        body: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if next_token:
            body["NextToken"] = next_token
        self.cloudwatch.add_response("get_metric_data", body, expected)


def series(query_id: str, points: list[tuple[datetime, float]], status: str = "Complete") -> dict[str, Any]:
    return {
        "Id": query_id,
        "Label": query_id,
        "Timestamps": [t for t, _ in points],
        "Values": [v for _, v in points],
        "StatusCode": status,
    }


# ---------------------------------------------------------------- a local stand-in endpoint
CALLER_XML = f"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<GetCallerIdentityResult><Arn>arn:aws:iam::{KEY_ACCOUNT}:user/doow</Arn><UserId>AIDAEXAMPLE</UserId>
<Account>{KEY_ACCOUNT}</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"""


class FakeEndpoint:
    """A local HTTP server standing in for AWS at `endpoint_url`, for what only the wire can
    show: a proxy's HTML page, a bare 5xx, a server that never answers. Every request gets
    `status` and `body` after `delay` seconds; with `sts_ok`, GetCallerIdentity answers properly
    (so the fault hits CloudWatch)."""

    def __init__(self, status: int = 200, body: bytes = b"", delay: float = 0.0, *, sts_ok: bool = False) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if endpoint.sts_ok and b"Action=GetCallerIdentity" in body:
                    return self._reply(200, CALLER_XML.encode())
                endpoint.requests += 1
                if endpoint.delay:
                    endpoint.release.wait(endpoint.delay)
                self._reply(endpoint.status, endpoint.body)

            def _reply(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (read timeout)

            def log_message(self, *args: Any) -> None:
                pass

        self.status, self.body, self.delay, self.sts_ok, self.requests = status, body, delay, sts_ok, 0
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

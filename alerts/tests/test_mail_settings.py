"""Alert mail goes through Django's mail framework as configured: `EMAIL_URL` (django-environ)
picks the backend and server, `DEFAULT_FROM_EMAIL` the sender and `DOOW_BASE_URL` the host of
the links a worker writes. Here an SMTP server on 127.0.0.1 receives the mail the Celery task
sends, and the settings module is run with those variables in a fresh process."""

from __future__ import annotations

import socketserver
import threading
from datetime import date
from email import message_from_bytes

import environ
import pytest

from alerts.models import AnomalyRule, Budget
from alerts.tasks import evaluate_alerts
from alerts.tests.conftest import put_spend
from doow.tests.test_settings import run_with, shown


class SmtpInbox(socketserver.ThreadingTCPServer):
    """Just enough SMTP (RFC 5321) to accept mail on 127.0.0.1: envelope and message kept."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.messages: list[dict] = []
        super().__init__(("127.0.0.1", 0), _SmtpSession)


class _SmtpSession(socketserver.StreamRequestHandler):
    server: SmtpInbox

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        envelope: dict = {"from": "", "to": []}
        self.reply("220 inbox.test ESMTP")
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 inbox.test")
            elif verb == "MAIL":
                envelope["from"] = command.split(":", 1)[1].strip().split()[0].strip("<>")
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.messages.append({**envelope, "message": message_from_bytes(data)})
                envelope = {"from": "", "to": []}
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("250 OK")


@pytest.fixture
def inbox():
    server = SmtpInbox()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_alert_mail_reaches_the_smtp_server_of_email_url(workspace, openai, admin_user, inbox, settings):
    host, port = inbox.server_address
    for name, value in environ.Env.email_url_config(f"smtp://{host}:{port}").items():
        setattr(settings, name, value)
    settings.DEFAULT_FROM_EMAIL = "Doow alerts <alerts@doow.example.com>"
    settings.DOOW_BASE_URL = "https://doow.example.com/"
    AnomalyRule.objects.create(workspace=workspace, enabled=False)
    Budget.objects.create(workspace=workspace, name="AI spend", amount=100)
    put_spend(openai, {date(2026, 12, 6): "120"})

    evaluate_alerts.delay()
    evaluate_alerts.delay()  # nothing changed: no second mail

    assert settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend"
    assert len(inbox.messages) == 1
    sent = inbox.messages[0]
    assert sent["from"] == "alerts@doow.example.com" and sent["to"] == [admin_user.email]
    assert sent["message"]["Subject"] == "[Doow] Opened: Budget AI spend passed 100%"
    assert sent["message"]["From"] == "Doow alerts <alerts@doow.example.com>"
    body = sent["message"].get_payload(decode=True).decode()
    assert "month to date: 120.00" in body
    assert "https://doow.example.com/w/acme/notifications/" in body


def test_the_settings_read_email_url_default_from_email_and_doow_base_url():
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ('EMAIL_BACKEND', 'EMAIL_HOST', 'EMAIL_PORT', "
        "'EMAIL_HOST_USER', 'EMAIL_HOST_PASSWORD', 'EMAIL_USE_TLS', 'DEFAULT_FROM_EMAIL', 'DOOW_BASE_URL')}))"
    )
    env = {
        "DEBUG": "true",
        "EMAIL_URL": "smtp+tls://mailer:p%40ss@mail.example.com:587",
        "DEFAULT_FROM_EMAIL": "alerts@doow.example.com",
        "DOOW_BASE_URL": "https://doow.example.com",
    }
    assert shown(run_with(env, code)) == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_TLS": True,
        "DEFAULT_FROM_EMAIL": "alerts@doow.example.com",
        "DOOW_BASE_URL": "https://doow.example.com",
    }
    console = shown(run_with({"DEBUG": "true", "EMAIL_URL": "consolemail://"}, code))
    assert console["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"

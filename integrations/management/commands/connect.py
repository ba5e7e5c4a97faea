"""manage.py connect PROVIDER --workspace SLUG --credential KEY=VALUE [...] [--setting KEY=VALUE ...]
[--name NAME] [--no-verify] [--allow-duplicate]

Creates an Integration (and the workspace if it does not exist) through the same service the
pages use, verifying the credential unless told not to. The new id is printed alone on the
last line, so scripts can take it with `tail -n 1`. A provider account that a live
integration of the workspace already reads is refused (exit 1, "already connected as NAME")
unless --allow-duplicate says the new one reads another part of it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug

from accounts.models import Workspace
from integrations import services
from integrations.http import redact
from integrations.management.options import parse_pairs
from integrations.providers.base import ProviderError
from integrations.providers.registry import PROVIDERS


class Command(BaseCommand):
    help = "Connect a provider account to a workspace; prints the new integration id on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider", help=f"Provider slug: {', '.join(sorted(PROVIDERS))}.")
        parser.add_argument("--workspace", required=True, help="Workspace slug (created if it does not exist).")
        parser.add_argument(
            "--credential",
            action="extend",
            nargs="+",
            default=[],
            metavar="KEY=VALUE",
            help="A secret credential field; VALUE @PATH reads the file. Repeatable.",
        )
        parser.add_argument(
            "--setting",
            action="extend",
            nargs="+",
            default=[],
            metavar="KEY=VALUE",
            help="A non-secret setting (e.g. base_url). Repeatable.",
        )
        parser.add_argument("--name", default="", help="Display name (defaults to the provider's name).")
        parser.add_argument(
            "--no-verify",
            action="store_true",
            help="Store the credential without calling the provider (so without learning its account: "
            "duplicates show on the Integrations page after its first Test connection).",
        )
        parser.add_argument(
            "--allow-duplicate",
            action="store_true",
            help="Connect even if an integration of the workspace already reads this provider account: "
            "the new one reads another part of it (other projects), and both are counted.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["provider"]
        provider = PROVIDERS.get(slug)
        if provider is None:
            raise CommandError(f"Unknown provider {slug!r}. Known providers: {', '.join(sorted(PROVIDERS))}.")
        credential = parse_pairs(
            options["credential"], option="--credential", known={f.name: f.label for f in provider.credential_fields}
        )
        settings = parse_pairs(
            options["setting"], option="--setting", known={f.name: f.label for f in provider.setting_fields}
        )
        secrets = provider.secret_values(credential)

        workspace, created = self._workspace(options["workspace"])
        try:
            integration = services.integration_create(
                workspace=workspace,
                provider_slug=provider.slug,
                credential=credential,
                settings=settings,
                name=options["name"],
                verify=not options["no_verify"],
                allow_duplicate=options["allow_duplicate"],
            )
        except services.DuplicateAccount as error:
            if created:
                workspace.delete()
            raise CommandError(
                redact(
                    f"{error.message}\nHint: connect nothing more (that integration already reads this usage), or "
                    "pass --allow-duplicate if this one reads another part of the account (other projects): "
                    "both are then counted.",
                    secrets,
                )
            ) from None
        except ProviderError as error:
            if created:
                workspace.delete()  # a failed connect leaves nothing behind
            hint = f"\nHint: {error.hint}" if error.hint else ""
            status = f" (HTTP {error.http_status})" if error.http_status else ""
            request = f" [request id {error.request_id}]" if error.request_id else ""
            raise CommandError(redact(f"{error.category}: {error.message}{status}{request}{hint}", secrets)) from None
        except ValidationError as error:
            if created:
                workspace.delete()
            raise CommandError(redact(f"Invalid integration: {'; '.join(error.messages)}", secrets)) from None
        except BaseException:
            if created:
                workspace.delete()
            raise

        verified = "verified" if integration.verified_at else "not verified"
        summary = (integration.identity or {}).get("summary") or ""
        if integration.account_share == integration.AccountShare.SPLIT:
            summary = f"{summary} It shares its provider account with another integration of the workspace; both are counted.".strip()
        self.stdout.write(
            f"Connected {integration.name} ({provider.slug}, {verified}) in workspace {workspace.slug}."
            + (f" {summary}" if summary else "")
        )
        self.stdout.write(str(integration.pk))

    def _workspace(self, slug: str) -> tuple[Workspace, bool]:
        try:
            validate_slug(slug)
        except ValidationError:
            raise CommandError(f"--workspace must be a slug (letters, digits, - and _), not {slug!r}.") from None
        return Workspace.objects.get_or_create(slug=slug, defaults={"name": slug.title()})

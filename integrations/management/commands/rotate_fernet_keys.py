"""manage.py rotate_fernet_keys

Re-encrypts every Integration credential with the newest key, FERNET_KEYS[0]. Rotate a key by
putting the new one first (FERNET_KEYS=new,old), running this, then removing the old one.

Credentials are read and written with raw SQL on purpose: loading a row through the ORM
decrypts it, and one undecryptable credential would abort the whole run. Here each one is
decrypted on its own, and a row that no key opens is reported by id (never by content)
while the rest are still rotated; the command then exits non-zero.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from integrations.apps import reset_fernet_cache
from integrations.models import Integration

# A credential changed by someone else mid-rotation is read again this many times.
_ATTEMPTS = 3


class Command(BaseCommand):
    help = "Re-encrypt every integration credential with the newest key in FERNET_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        reset_fernet_cache()  # a long-lived process must use the FERNET_KEYS in force now
        field: Any = Integration._meta.get_field("credential")  # fernet_fields' EncryptedTextField
        fernet = field.fernet  # encrypts with the first key, decrypts with any
        quote = connection.ops.quote_name
        pk_name: str = Integration._meta.pk.column  # type: ignore[assignment]  # the model has a pk
        table, pk_column, column = quote(Integration._meta.db_table), quote(pk_name), quote(field.column)
        select = f"SELECT {column} FROM {table} WHERE {pk_column} = %s"
        # Compare-and-swap: only replace the ciphertext we decrypted.
        update = f"UPDATE {table} SET {column} = %s WHERE {pk_column} = %s AND {column} = %s"

        rotated = 0
        failed: list[tuple[int, str]] = []
        for pk in Integration.objects.order_by("pk").values_list("pk", flat=True):
            for _attempt in range(_ATTEMPTS):
                with connection.cursor() as cursor:
                    cursor.execute(select, [pk])
                    row = cursor.fetchone()
                    if row is None or row[0] is None:  # deleted meanwhile, or nothing stored
                        break
                    old = bytes(row[0])
                    try:
                        plaintext = fernet.decrypt(old)
                    except InvalidToken:
                        failed.append((pk, "cannot be decrypted with any key in FERNET_KEYS"))
                        break
                    new = fernet.encrypt(plaintext)
                    binary = connection.Database.Binary  # type: ignore[attr-defined]  # the DB-API module
                    cursor.execute(update, [binary(new), pk, binary(old)])
                    if cursor.rowcount == 1:
                        rotated += 1
                        break
            else:
                failed.append((pk, "kept changing during the rotation; run the command again"))

        self.stdout.write(f"Re-encrypted {rotated} credential(s) with the newest key.")
        for pk, reason in failed:
            self.stderr.write(f"Integration {pk}: credential {reason}.")
        if failed:
            ids = ", ".join(str(pk) for pk, _ in failed)
            raise CommandError(
                f"{len(failed)} credential(s) were not re-encrypted (integration ids: {ids}).", returncode=1
            )

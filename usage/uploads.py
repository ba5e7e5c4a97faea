"""Uploads stay in memory, never on the web host's disk.

Django spools an upload over FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) to a temporary file on
the web host; a usage CSV (up to MAX_IMPORT_BYTES) is read by a worker on another host, so
it goes from memory into the database instead (usage/import_jobs.py). This handler keeps a
file in memory up to one byte past the limit and only counts the rest, so a file that is
too large is refused with its real size and never fills memory or disk.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from usage.importer import MAX_IMPORT_BYTES


class MemoryOnlyUploadHandler(FileUploadHandler):
    limit = MAX_IMPORT_BYTES + 1

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = BytesIO()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        room = self.limit - self.buffer.tell()
        if room > 0:
            self.buffer.write(raw_data[:room])
        return None  # consumed here: no handler after this one

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.buffer.seek(0)
        # `size` is what was sent, even past the part kept: the refusal names the real size.
        return InMemoryUploadedFile(
            file=self.buffer,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )

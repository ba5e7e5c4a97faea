"""export_usage's bytes: `--output FILE` and standard output's binary layer get COPY's UTF-8
blocks as they come (PostgreSQL) or the Python writer's text encoded once (SQLite); either way
the file is byte for byte the page's download of the same rows. A failed export leaves no file,
and a file already at that path untouched."""

from __future__ import annotations

import io
import os
import stat
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from usage.export_copy import CopyExport
from usage.management.commands import export_usage
from usage.models import Application
from usage.tests.test_export import DAY1, EXPECTED_HEADER, make_integration, make_license, make_record

FORMATS = ["csv", "focus"]


@pytest.fixture
def usage(workspace):
    """Rows whose names need every treatment: non-ASCII (UTF-8 on the way out), a formula, a
    comma and a quote, a newline inside a cell, and attribution."""
    openai = make_integration(workspace, name="OpenAI – prod ✓")
    bot = Application.objects.create(workspace=workspace, name='=Bot, "v2"')
    scale = make_license(workspace, bot, plan_name="Équipe")
    for hour, (model, project) in enumerate([("gpt-4o", "proj_日本"), ("-2+3", "a,b"), ("line1\nline2", "")]):
        make_record(openai, DAY1 + timedelta(hours=hour), "input_tokens", f"{hour}.50", "tokens", model=model,
                    project=project, application=bot if hour else None, license=scale if hour == 1 else None)  # fmt: skip
    make_record(openai, DAY1 + timedelta(hours=3), "cost", "-1.25", "USD", model="gpt-4o")
    return openai


def _page(client, fmt: str) -> bytes:
    response = client.get(reverse("usage:export", kwargs={"ws": "acme"}), {"format": fmt})
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def _text_stdout(fmt: str) -> str:
    out = io.StringIO()
    call_command("export_usage", "--workspace", "acme", "--format", fmt, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_output_file_is_the_pages_download(member_client, usage, tmp_path, fmt):
    path = tmp_path / "usage.csv"
    call_command("export_usage", "--workspace", "acme", "--format", fmt, "--output", str(path))
    written = path.read_bytes()
    assert written.count(b"\r\n") >= 5  # the header and the rows, CRLF-terminated
    assert "OpenAI – prod ✓".encode() in written and "proj_日本".encode() in written
    assert written == _page(member_client, fmt)
    assert written == _text_stdout(fmt).encode()  # what a text-only stdout gets, decoded


@pytest.mark.parametrize("fmt", FORMATS)
def test_standard_output_gets_the_same_bytes(member_client, usage, capsysbinary, fmt):
    call_command("export_usage", "--workspace", "acme", "--format", fmt)  # stdout: sys.stdout
    written = capsysbinary.readouterr().out
    assert "proj_日本".encode() in written
    assert written == _page(member_client, fmt)


def test_an_empty_export_writes_the_header_alone(usage, tmp_path):
    path = tmp_path / "empty.csv"
    call_command("export_usage", "--workspace", "acme", "--since", "2027-01-01", "--output", str(path))
    assert path.read_bytes() == ",".join(EXPECTED_HEADER).encode() + b"\r\n"


def test_an_unwritable_output_is_refused(usage, tmp_path):
    with pytest.raises(CommandError, match=r"Cannot write .*missing"):
        call_command("export_usage", "--workspace", "acme", "--output", str(tmp_path / "missing" / "usage.csv"))


@pytest.fixture
def broken_export(monkeypatch):
    """The database goes away after the first block (COPY on PostgreSQL, the Python writer on
    SQLite)."""
    csv = export_usage.EXPORTS["csv"]

    def first_block_then_failure(records, rows_per_block):
        yield b"provider,half a row", 1
        raise ConnectionError("the database went away")

    def python_row_then_failure(records):
        yield list(csv.header)
        raise ConnectionError("the database went away")

    broken = CopyExport(header=csv.header, copy_blocks=first_block_then_failure, python_rows=python_row_then_failure)
    monkeypatch.setitem(export_usage.EXPORTS, "csv", broken)


def test_a_failed_export_leaves_no_file(usage, tmp_path, broken_export):
    """No half file that looks like an export, and no temporary file left beside it."""
    path = tmp_path / "usage.csv"
    with pytest.raises(ConnectionError):
        call_command("export_usage", "--workspace", "acme", "--output", str(path))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_the_file_already_there_untouched(usage, tmp_path, broken_export):
    path = tmp_path / "usage.csv"
    path.write_bytes(b"last month's export\r\n")
    path.chmod(0o640)
    with pytest.raises(ConnectionError):
        call_command("export_usage", "--workspace", "acme", "--output", str(path))
    assert path.read_bytes() == b"last month's export\r\n"
    assert list(tmp_path.iterdir()) == [path]


def test_a_complete_export_replaces_the_file_already_there(member_client, usage, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_bytes(b"last month's export, longer than nothing\r\n" * 1000)
    path.chmod(0o640)
    call_command("export_usage", "--workspace", "acme", "--output", str(path))
    assert path.read_bytes() == _page(member_client, "csv")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the file's mode is kept
    assert list(tmp_path.iterdir()) == [path]


def test_a_new_output_file_gets_the_umasks_mode(usage, tmp_path):
    path = tmp_path / "usage.csv"
    umask = os.umask(0o027)
    try:
        call_command("export_usage", "--workspace", "acme", "--output", str(path))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # not mkstemp's 0600


def test_a_named_pipe_or_a_symlink_is_written_through_not_replaced(member_client, usage, tmp_path):
    pipe = tmp_path / "export.fifo"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    call_command("export_usage", "--workspace", "acme", "--output", str(pipe))
    reader.join(timeout=30)
    assert got == [_page(member_client, "csv")] and stat.S_ISFIFO(pipe.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.fifo"]  # no temporary file left

    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    target.write_bytes(b"old")
    link.symlink_to(target)
    call_command("export_usage", "--workspace", "acme", "--output", str(link))
    assert link.is_symlink() and target.read_bytes() == _page(member_client, "csv")

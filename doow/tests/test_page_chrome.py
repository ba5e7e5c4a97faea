"""What every page carries whoever the user is: a favicon browsers find at /favicon.ico, and a
skip link to the main content for keyboard users."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse


def test_favicon_ico_is_served_at_the_site_root():
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file's header: reserved 0, type 1 (icon)


@pytest.mark.django_db
def test_every_page_has_a_skip_link_to_its_main_content():
    page = Client().get(reverse("accounts:login")).content.decode()
    assert '<a class="skip-link" href="#main">Skip to content</a>' in page
    assert 'id="main"' in page
    assert 'rel="icon"' in page

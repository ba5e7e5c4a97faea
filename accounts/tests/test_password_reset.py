"""Password reset, through the pages and the mail a person would receive."""

from __future__ import annotations

import re

from django.core import mail
from django.test import Client
from django.urls import reverse

NEW_PASSWORD = "a-brand-new-horse-battery-9"
LINK = re.compile(r"https?://testserver(/password-reset/[^/\s]+/[^/\s]+/)")


def request_reset(client: Client, email: str):
    return client.post(reverse("accounts:password_reset"), {"email": email}, follow=True)


def test_the_sign_in_page_links_to_the_reset_form(client):
    body = client.get(reverse("accounts:login")).content.decode()
    assert reverse("accounts:password_reset") in body and "Forgot your password?" in body
    form = client.get(reverse("accounts:password_reset"))
    assert form.status_code == 200
    assert "Reset your password" in form.content.decode() and "css/doow.css" in form.content.decode()


def test_reset_by_mail_sets_a_new_password_that_signs_in(client, admin_user):
    response = request_reset(client, "ADA@example.com")  # addresses match whatever the case
    assert response.redirect_chain[-1][0] == reverse("accounts:password_reset_done")
    assert "Check your e-mail" in response.content.decode()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@example.com"]
    assert message.subject == "Reset your Doow password"
    assert '"ada"' in message.body
    path = LINK.search(message.body).group(1)

    # The link moves its token into the session and redirects to a token-free URL.
    page = client.get(path, follow=True)
    assert page.status_code == 200 and "Choose a new password" in page.content.decode()
    form_url = page.redirect_chain[-1][0]
    done = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True)
    assert done.redirect_chain[-1][0] == reverse("accounts:password_reset_complete")
    assert "Password changed" in done.content.decode()

    signer = Client()
    old = signer.post(reverse("accounts:login"), {"username": "ada", "password": "correct-horse-battery-staple"})
    assert old.status_code == 200 and "_auth_user_id" not in signer.session
    new = signer.post(reverse("accounts:login"), {"username": "ada", "password": NEW_PASSWORD})
    assert new.status_code == 302 and "_auth_user_id" in signer.session

    # The link works once.
    again = Client().get(path, follow=True)
    assert "This link no longer works" in again.content.decode()


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, admin_user):
    known = request_reset(Client(), "ada@example.com")
    mail.outbox.clear()
    unknown = request_reset(client, "nobody@example.com")
    assert unknown.redirect_chain == known.redirect_chain
    assert unknown.status_code == known.status_code == 200
    strip = lambda html: re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"|"X-CSRFToken": "[^"]+"', "", html)  # noqa: E731
    assert strip(unknown.content.decode()) == strip(known.content.decode())
    assert mail.outbox == []


def test_a_tampered_link_is_refused(client, admin_user):
    request_reset(client, "ada@example.com")
    path = LINK.search(mail.outbox[0].body).group(1)
    page = client.get(path[:-3] + "xx/", follow=True)
    assert "This link no longer works" in page.content.decode()
    assert "new_password1" not in page.content.decode()


def test_a_mismatched_new_password_is_refused_and_nothing_changes(client, admin_user):
    request_reset(client, "ada@example.com")
    page = client.get(LINK.search(mail.outbox[0].body).group(1), follow=True)
    response = client.post(
        page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": "different-one-1"}
    )
    assert response.status_code == 200
    assert "didn’t match" in response.content.decode() or "didn't match" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.check_password("correct-horse-battery-staple")

"""Sign-in throttling (django-axes), through the real sign-in forms: /login/ and /admin/login/."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from conftest import PASSWORD

ATTACKER = "203.0.113.66"
ELSEWHERE = "198.51.100.7"
PAUSED = "Too many failed sign-in attempts for this username from your network address"


def sign_in(
    client: Client, username: str = "ada", password: str = PASSWORD, *, ip: str = ATTACKER, url: str = "", **extra
):
    url = url or reverse("accounts:login")
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(times: int, *, username: str = "ada", ip: str = ATTACKER, url: str = "", **extra) -> list:
    client = Client()
    return [sign_in(client, username, f"guess-{n}", ip=ip, url=url, **extra) for n in range(times)]


def test_ten_failures_pause_the_username_from_that_address_with_a_clear_message(admin_user):
    answers = fail(9)
    assert [a.status_code for a in answers] == [200] * 9
    assert all("enter a correct username and password" in a.content.decode() for a in answers)

    tenth = fail(1)[0]
    assert tenth.status_code == 429
    assert PAUSED in tenth.content.decode() and "15 minutes" in tenth.content.decode()

    client = Client()
    refused = sign_in(client)  # the right password, from the attacker's address
    assert refused.status_code == 429
    body = refused.content.decode()
    assert PAUSED in body and "paused for 15 minutes" in body
    assert 'name="username"' in body and "Sign in" in body  # the sign-in page, with the form
    assert not signed_in(client)


def test_the_real_user_from_another_address_is_never_locked_out(admin_user):
    fail(12)
    client = Client()
    response = sign_in(client, ip=ELSEWHERE)
    assert response.status_code == 302 and signed_in(client)
    # and another username from the attacker's address is not paused either
    assert sign_in(Client(), "max", "wrong").status_code == 200


def test_the_pause_ends_by_itself_after_15_minutes(admin_user, pinned_clock):
    fail(10)
    with time_machine.travel(pinned_clock + timedelta(minutes=14), tick=False):
        assert sign_in(Client()).status_code == 429
    with time_machine.travel(pinned_clock + timedelta(minutes=15, seconds=5), tick=False):
        client = Client()
        response = sign_in(client)
        assert response.status_code == 302 and signed_in(client)


def test_attempts_during_the_pause_do_not_extend_it(admin_user, pinned_clock):
    fail(10)
    with time_machine.travel(pinned_clock + timedelta(minutes=10), tick=False):
        fail(5)
    with time_machine.travel(pinned_clock + timedelta(minutes=15, seconds=5), tick=False):
        client = Client()
        assert sign_in(client).status_code == 302 and signed_in(client)


def test_a_success_clears_earlier_failures(admin_user):
    fail(9)
    assert sign_in(Client()).status_code == 302
    assert [a.status_code for a in fail(9)] == [200] * 9  # counting starts again


def test_axes_reset_lifts_the_pause(admin_user):
    fail(10)
    assert sign_in(Client()).status_code == 429
    out = io.StringIO()
    call_command("axes_reset", stdout=out)
    assert "1 attempts removed" in out.getvalue()
    client = Client()
    assert sign_in(client).status_code == 302 and signed_in(client)


def test_axes_reset_ip_username_lifts_only_that_pair(admin_user, member_user):
    fail(10)
    fail(10, username="max")
    call_command("axes_reset_ip_username", ATTACKER, "ada", stdout=io.StringIO())
    assert sign_in(Client()).status_code == 302
    assert sign_in(Client(), "max").status_code == 429


def test_staff_lift_the_pause_in_django_admin(admin_user, django_user_model):
    fail(10)
    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x"))
    changelist = staff.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200
    assert ATTACKER in changelist.content.decode()
    attempt = AccessAttempt.objects.get(username="ada")
    assert attempt.failures_since_start == 10
    assert PASSWORD not in attempt.post_data and "guess-" not in attempt.post_data  # passwords masked
    response = staff.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert sign_in(Client()).status_code == 302


def test_django_admin_sign_in_is_throttled_too(admin_user, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    url = reverse("admin:login")
    answers = fail(10, username="root", url=url)
    assert [a.status_code for a in answers] == [200] * 9 + [429]
    client = Client()
    refused = sign_in(client, "root", url=url)
    assert refused.status_code == 429
    body = refused.content.decode()
    assert PAUSED in body and "Django administration" in body  # admin's own sign-in page
    assert not signed_in(client)
    # failures on either form count together: the pair is paused on /login/ as well
    assert sign_in(Client(), "root").status_code == 429
    other = Client()
    assert sign_in(other, "root", ip=ELSEWHERE, url=url).status_code == 302 and signed_in(other)


def test_a_forged_x_forwarded_for_is_ignored_without_a_proxy(admin_user):
    # A fresh forged address per guess would dodge the limit if the header were believed.
    client = Client()
    for n in range(10):
        sign_in(client, "ada", f"guess-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    assert sign_in(Client(), HTTP_X_FORWARDED_FOR=ELSEWHERE).status_code == 429


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_address_it_appended_counts(admin_user):
    proxy = "10.0.0.2"
    # The proxy appends the client's address; whatever the client wrote before it is ignored.
    for n in range(10):
        sign_in(Client(), "ada", f"guess-{n}", ip=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    assert sign_in(Client(), ip=proxy, HTTP_X_FORWARDED_FOR=ATTACKER).status_code == 429
    client = Client()  # the real user, through the same proxy from elsewhere
    assert sign_in(client, ip=proxy, HTTP_X_FORWARDED_FOR=ELSEWHERE).status_code == 302 and signed_in(client)


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_behind_two_proxies_the_address_the_outer_one_saw_counts(admin_user):
    edge, inner = "198.18.0.1", "10.0.0.2"
    for n in range(10):
        sign_in(Client(), "ada", f"guess-{n}", ip=inner, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}, {edge}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


@pytest.mark.parametrize("count", ["-1", "two"])
def test_a_bad_trusted_proxy_count_fails_at_start_up(count):
    from doow.tests.test_settings import run_with

    result = run_with({"DEBUG": "true", "TRUSTED_PROXY_COUNT": count})
    assert result.returncode != 0

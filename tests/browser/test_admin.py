"""The admin site in a real Chromium: its pages work under the Content-Security-Policy (the
`page` fixture fails the test on any refusal)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.models import User
from tests.browser.test_journeys import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def test_an_operator_logs_in_to_the_admin_and_opens_a_user(page):
    operator = User.objects.create_superuser("operator@example.com", PASSWORD)

    page.goto("/admin/")
    page.get_by_label("Email").fill("operator@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto(f"/admin/accounts/user/{operator.pk}/change/")
    expect(page.get_by_role("heading", name="operator@example.com")).to_be_visible()
    page.get_by_role("link", name="Today").first.click()  # the date widget's script runs
    expect(page.locator("#id_date_joined_0")).to_have_value(re.compile(r"\d{4}-\d{2}-\d{2}"))

"""The smaller dashboard items of issue 15, in a real Chromium: the schedule form shows the
inputs of the cadence and window chosen and says the minimum interval; an API key's page
survives a reload without creating a second key or showing the secret again, and revoking
asks first; an invitation's link says what it is, and owners resend and revoke it; a result's
charts show the whole run at 1280 and 390 px and cluster 1,000 fill markers when zoomed out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from playwright.sync_api import expect

from accounts.models import ApiKey, Invitation
from accounts.services import sign_up
from runtimes.models import TradingSession
from strategies.services import upload_dataset, upload_strategy_version
from tests.browser.conftest import SCREENSHOTS, log_in
from tests.runtimes.results import START, completed_session, synthetic_result
from tests.runtimes.schedules.conftest import daily_bars

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

PASSWORD = "a-long-and-unusual-passphrase-42"
FILLS = 1000  # synthetic_result: one fill every 2 minutes, alternately buy and sell
CANDLES = 2 * FILLS  # one 1m candle per minute of the run


def owner_of_a_workspace(email: str = "ada@example.com"):
    owner = sign_up(email=email, password=PASSWORD)
    return owner, owner.memberships.get().workspace


# -- the schedule form -------------------------------------------------------------------------

def test_the_schedule_form_shows_the_inputs_of_the_choice_and_says_the_minimum(page,
                                                                                screenshot):
    owner, workspace = owner_of_a_workspace()
    upload_strategy_version(workspace=workspace, author=owner, strategy="Momentum",
                            filename="main.py", content=b"import tektii\n")
    upload_dataset(workspace=workspace, by=owner, name="SPY daily",
                   files={"SPY": ("SPY.csv", daily_bars())})
    log_in(page, "ada@example.com", PASSWORD)

    page.goto("/app/schedules/new/")
    cron, interval = page.locator("#id_cron_expression"), page.locator("#id_interval_minutes")
    days, start = page.locator("#id_rolling_days"), page.locator("#id_start")
    expect(cron).to_be_visible()
    expect(interval).to_be_hidden()
    expect(days).to_be_visible()
    expect(start).to_be_hidden()
    screenshot("schedule-form-cron")

    page.get_by_label("Interval", exact=True).check()
    expect(interval).to_be_visible()
    expect(cron).to_be_hidden()
    page.get_by_label("Fixed dates").check()
    expect(start).to_be_visible()
    expect(days).to_be_hidden()
    page.get_by_label("Rolling window").check()
    page.get_by_label("Name").fill("Too often")
    page.get_by_label("Strategy version").select_option(label="Momentum v1")
    page.get_by_label("Dataset").select_option(index=1)  # the one dataset
    interval.fill("3")
    page.get_by_role("button", name="Create schedule").click()

    expect(page.locator(".field-errors")).to_have_text(["The interval must be at least 5 minutes."])
    expect(interval).to_be_visible()  # the choice made is kept, and so is what was typed
    expect(interval).to_have_value("3")
    expect(cron).to_be_hidden()
    screenshot("schedule-form-interval-error")
    screenshot("schedule-form-interval-error", mobile=True)


# -- API keys ----------------------------------------------------------------------------------

def test_a_new_key_survives_a_reload_as_one_key_shown_once_and_revoking_asks_first(
        page, screenshot):
    owner_of_a_workspace()
    log_in(page, "ada@example.com", PASSWORD)

    page.goto("/app/keys/new/")
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("read", exact=True).check()
    page.get_by_role("button", name="Create key").click()
    expect(page).to_have_url(re.compile(r"/app/keys/[0-9a-f-]{36}/created/$"))
    secret = page.locator("#new-key").inner_text()
    assert re.fullmatch(r"prt_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}", secret)
    assert secret not in page.url
    screenshot("api-key-created")

    page.reload()  # a GET of the page: no second key, no secret
    expect(page.get_by_text("was shown once, when it was created")).to_be_visible()
    expect(page.locator("#new-key")).to_have_count(0)
    assert secret not in page.content()
    assert ApiKey.objects.count() == 1
    screenshot("api-key-reloaded")

    page.get_by_role("link", name="Back to API keys").click()
    page.get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", name="Revoke the key “laptop”?")).to_be_visible()
    assert ApiKey.objects.get().revoked_at is None  # asking revokes nothing
    screenshot("api-key-revoke-confirm")
    page.get_by_role("button", name="Revoke key").click()

    expect(page.get_by_text("Key laptop revoked.")).to_be_visible()
    expect(page.locator(".badge-off", has_text="revoked")).to_be_visible()
    assert ApiKey.objects.get().revoked_at is not None


# -- invitations -------------------------------------------------------------------------------

def _link_of(message) -> str:
    return re.search(r"https?://[^/\s]+(/invitations/[^/\s]+/)", message.body).group(1)


def test_an_invitation_link_says_what_it_is_and_owners_resend_and_revoke_it(
        page, screenshot, browser, daphne_url, request):
    owner_of_a_workspace()
    sign_up(email="grace@example.com", password=PASSWORD)
    log_in(page, "ada@example.com", PASSWORD)
    page.goto("/app/members/")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to grace@example.com.")).to_be_visible()
    first_link = _link_of(mail.outbox[-1])

    row = page.locator("tr[data-invitation='grace@example.com']")
    row.get_by_role("button", name="Resend").click()
    expect(page.get_by_text("A new invitation link was sent to grace@example.com")).to_be_visible()
    new_link = _link_of(mail.outbox[-1])
    assert new_link != first_link
    screenshot("members-invitations")

    guest = browser.new_context(base_url=daphne_url).new_page()
    log_in(guest, "grace@example.com", PASSWORD)
    guest.goto(first_link)
    expect(guest.get_by_role("alert")).to_have_text(
        "This invitation link is not valid: it was never issued, or a newer link replaced it.")
    guest.goto(new_link)
    invitation = Invitation.objects.select_related("workspace").get()
    expect(guest.locator(".invitation-summary")).to_have_text(
        f"ada@example.com invited grace@example.com to the Parity workspace "
        f"{invitation.workspace.name} as member.")
    expires = invitation.expires_at
    expect(guest.get_by_text(f"This link expires on {expires:%Y-%m-%d %H:%M} UTC")).to_be_visible()
    expect(guest.get_by_text("Accepting adds you to")).to_be_visible()
    expect(guest.get_by_role("button", name=re.compile("^Accept and join"))).to_be_visible()
    guest.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-invitation-page.png"),
                     full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())  # "Revoke the invitation to …?"
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Invitation to grace@example.com revoked")).to_be_visible()
    expect(row).to_have_count(0)
    guest.goto(new_link)
    expect(guest.get_by_role("alert")).to_contain_text("was revoked on")
    expect(guest.get_by_role("button", name=re.compile("^Accept"))).to_have_count(0)
    guest.context.close()


# -- result charts -----------------------------------------------------------------------------

def minute_bars(count: int) -> bytes:
    rows = ["timestamp,open,high,low,close,volume"]
    for minute in range(count):
        price = 50_000 + minute % 97
        rows.append(f"{START + timedelta(minutes=minute):%Y-%m-%dT%H:%M:%SZ},{price},"
                    f"{price + 5},{price - 5},{price + 1},3")
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def long_run(db) -> TradingSession:
    """A finished backtest of 2,000 one-minute candles with 1,000 fills."""
    owner, workspace = owner_of_a_workspace()
    dataset = upload_dataset(workspace=workspace, by=owner, name="BTCUSDT 1m",
                             files={"BTCUSDT": ("BTCUSDT.csv", minute_bars(CANDLES))})
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(session, trades=FILLS)
    return session


WHOLE_RUN_VISIBLE = """(selector) => {
  const { chart, series } = document.querySelector(selector).parityChart;
  const range = chart.timeScale().getVisibleLogicalRange();
  const last = series.data().length - 1;
  return range !== null && range.from <= 0.5 && range.to >= last - 0.5;
}"""

VISIBLE_TIMES = """(selector) => {
  const { chart, series } = document.querySelector(selector).parityChart;
  const range = chart.timeScale().getVisibleRange();
  const data = series.data();
  return { from: range.from, to: range.to, first: data[0].time, last: data[data.length - 1].time,
           points: data.length, width: chart.timeScale().width() };
}"""

MARKERS = """() => {
  const { markers } = document.querySelector("#price-chart").parityChart;
  return { bucket: markers.bucket(), markers: markers.markers().map((m) => m.text) };
}"""


def assert_whole_run_visible(page, selector: str, points: int) -> None:
    page.wait_for_function(WHOLE_RUN_VISIBLE, arg=selector)
    shown = page.evaluate(VISIBLE_TIMES, selector)
    assert shown["points"] == points
    assert shown["from"] <= shown["first"] and shown["to"] >= shown["last"]


def shoot_charts(page, request, name: str) -> None:
    """The two chart panels alone (the full page is mostly tables)."""
    for panel, label in (("equity", "Equity and drawdown"), ("price", "Price and fills")):
        page.locator(f"section[aria-label='{label}']").screenshot(
            path=str(SCREENSHOTS / f"{request.node.name}-{name}-{panel}.png"))


def fills_stood_for(texts: list[str]) -> int:
    return sum(int(text.split()[0]) if text else 1 for text in texts)


def test_the_result_charts_show_the_whole_run_at_any_width_and_cluster_fill_markers(
        page, screenshot, long_run, request):
    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/app/backtests/{long_run.pk}/")

    for selector, points in (("#equity-chart", CANDLES), ("#price-chart", CANDLES)):
        assert_whole_run_visible(page, selector, points)
    zoomed_out = page.evaluate(MARKERS)
    assert zoomed_out["bucket"] > 1
    assert len(zoomed_out["markers"]) < 100  # instead of 1,000 arrows
    assert fills_stood_for(zoomed_out["markers"]) == FILLS
    assert all(re.fullmatch(r"\d+ (buys|sells)", text) for text in zoomed_out["markers"])
    expect(page.get_by_text("Zoomed out, nearby fills share one marker")).to_be_visible()
    screenshot("result-charts")
    shoot_charts(page, request, "1280")

    page.set_viewport_size({"width": 390, "height": 844})  # the same page, narrowed
    page.wait_for_function("() => document.querySelector('#price-chart').dataset.fittedWidth"
                           " < 390")
    for selector, points in (("#equity-chart", CANDLES), ("#price-chart", CANDLES)):
        assert_whole_run_visible(page, selector, points)
    assert page.evaluate(VISIBLE_TIMES, "#price-chart")["width"] < 390
    shoot_charts(page, request, "narrowed-to-390")

    page.goto(f"/app/backtests/{long_run.pk}/")  # loaded at 390 px
    for selector, points in (("#equity-chart", CANDLES), ("#price-chart", CANDLES)):
        assert_whole_run_visible(page, selector, points)
    narrow = page.evaluate(MARKERS)
    assert fills_stood_for(narrow["markers"]) == FILLS
    assert len(narrow["markers"]) < len(zoomed_out["markers"]) <= 100
    shoot_charts(page, request, "loaded-at-390")

    page.set_viewport_size({"width": 1280, "height": 900})  # widened: fitted again, then zoom in
    page.wait_for_function("() => document.querySelector('#price-chart').dataset.fittedWidth"
                           " > 900")
    assert_whole_run_visible(page, "#price-chart", CANDLES)
    page.evaluate("""() => document.querySelector("#price-chart").parityChart.chart
                     .timeScale().setVisibleLogicalRange({ from: 0, to: 15 })""")
    page.wait_for_function(
        "() => document.querySelector('#price-chart').parityChart.markers.bucket() === 1")
    zoomed_in = page.evaluate(MARKERS)
    assert len(zoomed_in["markers"]) == FILLS  # one candle in two has its own fill
    assert set(zoomed_in["markers"]) == {""}
    shoot_charts(page, request, "price-zoomed-in")
    assert datetime.fromtimestamp(page.evaluate(VISIBLE_TIMES, "#price-chart")["to"], UTC) < (
        START + timedelta(minutes=60))


# -- the top bar ---------------------------------------------------------------------------------

@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900},
                                      {"width": 1200, "height": 900},
                                      {"width": 390, "height": 844}])
def test_the_top_bar_fits_the_window_with_every_section_and_a_long_email(page, viewport):
    owner_of_a_workspace("katherine.johnson.longname@example.com")
    page.set_viewport_size(viewport)
    log_in(page, "katherine.johnson.longname@example.com", PASSWORD)

    overflow = page.evaluate("document.documentElement.scrollWidth - "
                             "document.documentElement.clientWidth")
    menu = page.locator(".topbar .menu summary").bounding_box()

    assert overflow == 0
    assert menu is not None and menu["x"] + menu["width"] <= viewport["width"]

"""The nightly report (include/report.py) on marts dbt built from the hand-made raw
sample, with model outputs published beside them: each department's page holds
only what its role may read, and the page, opened in Debian's Chromium, draws
every chart without a script error and shows the numbers the marts hold. A
screenshot of it is kept in ``test-artefacts/``."""

from __future__ import annotations

import re
import shutil
import stat
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from include.config import REPO_ROOT
from include.report import PERIOD_DAYS, SECTIONS, write
from include.warehouse import apply_schema
from tests.dbt_project.test_dbt_build import FIXTURE_SQL, apply_sql, run_dbt

NIGHT = date(2026, 11, 20)  # the sample's business day
ARTEFACTS = REPO_ROOT / "test-artefacts"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

# What the models would have published that night: a segment and a churn score per
# customer (the
# second half at high risk, on the win-back list), and a channel forecast made each
# of the 5 nights before, for the next 28 days.
MODEL_OUTPUTS = f"""
insert into reporting.customer_segments (as_of_date, customer_key, recency_days, frequency,
    monetary, r_score, f_score, m_score, segment, model_version)
select '{NIGHT}', customer_key, 10, 2, 100, 3, 3, 3,
    case when row_number() over (order by customer_key) % 2 = 0 then 'Loyal' else 'At risk' end,
    'test'
from marts.dim_customer;
insert into reporting.churn_scores (as_of_date, customer_key, horizon_days, churn_probability,
    churn_percentile, risk_band, drivers, model_version, run_id)
select '{NIGHT}', customer_key, 90, n::float / count(*) over (), 100.0 * n / count(*) over (),
    case when 2 * n > count(*) over () then 'high' else 'low' end, 'recency', 'test', 1
from (select customer_key, row_number() over (order by customer_key) as n
      from marts.dim_customer) as c;
insert into reporting.winback_list (as_of_date, customer_key, churn_probability,
    churn_percentile, risk_band, drivers, priority_rank, model_version, run_id)
select as_of_date, customer_key, churn_probability, churn_percentile, risk_band, drivers,
    row_number() over (order by churn_probability desc), model_version, run_id
from reporting.churn_scores where risk_band = 'high';
insert into reporting.sales_forecast (as_of_date, level, series_key, target_date, horizon_day,
    point, lo80, hi80, lo95, hi95, model_version, run_id)
select made, 'channel', channel, made + h, h, 100 + h, 80 + h, 120 + h, 60 + h, 140 + h, 'test', 1
from generate_series(date '{NIGHT}' - 5, date '{NIGHT}', interval '1 day') as m (made_at)
cross join lateral (select made_at::date as made) as d
cross join unnest(array['online', 'store']) as c (channel)
cross join generate_series(1, 28) as h;
insert into reporting.forecast_accuracy (forecast_kind, period_type, period_start, level,
    series_key, horizon_bucket, forecast, actual, abs_error, wape, bias, points, coverage80,
    coverage95)
values ('sales', 'week', '2026-11-16', 'channel', 'online', '1-7', 505, 480, 25, 0.052, 0.05,
    5, 0.8, 1);
insert into ops.quality_results (gate, business_date, table_name, suite, expectation, severity,
    success, detail)
values ('marts', '{NIGHT}', 'marts.fct_sales', 'marts', 'unique_key', 'critical', true, 'ok'),
    ('marts', '{NIGHT}', 'marts.fct_sales', 'marts', 'volume', 'warning', false, 'low');
"""


@pytest.fixture(scope="module")
def reports(module_make_database, tmp_path_factory) -> dict:
    url = module_make_database("t_report")
    work = tmp_path_factory.mktemp("report")
    apply_schema(url)
    apply_sql(url, FIXTURE_SQL)
    run_dbt(["build"], url, work / "dbt")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(MODEL_OUTPUTS)
    links = {"GX Data Docs": "../../gx/index.html", "Privacy evidence report": "../../ev.html"}
    index = write(url, NIGHT, work / "reports", links)
    return {"url": url, "index": index, "folder": index.parent}


def _sections(page: str) -> set[str]:
    return set(re.findall(r"<section id='([a-z_]+)'>", page))


def test_each_department_s_page_holds_only_what_its_role_may_read(reports):
    pages = {p.stem: p.read_text() for p in reports["folder"].glob("*.html")}
    # store operations sees its own region's rows only: no page holding every region
    assert set(pages) == {"index", "marketing", "customer_service", "bi_reader"}
    everything = {s.key for s in SECTIONS} | {"trust"}
    assert _sections(pages["index"]) == everything
    # marketing: segments, churn and cross-sell, never the complaint queue
    assert "service" not in _sections(pages["marketing"])
    assert {"segments", "churn", "cross_sell"} <= _sections(pages["marketing"])
    # customer service: the queue and its SLAs, never the churn or win-back list
    assert "service" in _sections(pages["customer_service"])
    assert "churn" not in _sections(pages["customer_service"])
    # the BI role reads no list of contactable customers
    assert "churn" not in _sections(pages["bi_reader"])
    for path in reports["folder"].glob("*.html"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def _kpi(driver, key: str) -> str:
    return driver.find_element("css selector", f"[data-kpi='{key}']").text


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text))


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed"
            " (`make browser` installs them as root: apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_the_report_draws_every_chart_in_a_browser_with_the_marts_numbers(reports, browser):
    browser.get(reports["index"].as_uri())
    charts = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-chart]')).map(c => {"
        " const svg = c.querySelector('svg.main-svg');"
        " const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};"
        " return [r.width, r.height, c.querySelectorAll('.trace, .hm, .bars path').length]; })"
    )
    # sales, segments, churn, 2 forecasts, service; the sample has one period (no moves
    # between segments yet) and too few customers for cross-sell peers: said, not drawn
    assert len(charts) == 6
    assert browser.find_element("css selector", "[data-empty='cross_sell']").text
    for width, height, marks in charts:
        assert width > 300 and height > 200 and marks > 0, charts
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    start = NIGHT - timedelta(days=PERIOD_DAYS - 1)
    with psycopg.connect(reports["url"]) as conn:
        revenue, orders = conn.execute(
            "select sum(total_revenue), sum(total_orders) from marts.rpt_daily_kpis"
            " where business_date between %s and %s",
            (start, NIGHT),
        ).fetchone()
        (winback,) = conn.execute("select count(*) from reporting.winback_list").fetchone()
        (queue,) = conn.execute(
            "select count(*) from marts.rpt_complaint_followup_queue"
        ).fetchone()
        (segmented,) = conn.execute(
            "select count(*) from reporting.customer_segments where as_of_date = %s", (NIGHT,)
        ).fetchone()
    assert revenue > 0 and winback > 0 and segmented > 0
    assert _number(_kpi(browser, "revenue")) == round(float(revenue))
    assert _number(_kpi(browser, "orders")) == orders
    assert _number(_kpi(browser, "winback")) == winback
    assert _number(_kpi(browser, "followup_queue")) == queue
    assert _number(_kpi(browser, "segmented")) == segmented
    assert _kpi(browser, "privacy") == "not checked"  # no privacy suite ran in this sample
    gates = browser.find_element("css selector", "[data-table='gates']").text
    assert "marts 1 0 1" in gates  # one check passed, no critical failure, one warning

    ARTEFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight"))
    shot = ARTEFACTS / f"report-{NIGHT}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    shutil.copy(reports["index"], ARTEFACTS / f"report-{NIGHT}.html")


def test_crm_report_writes_the_page_as_the_publisher(reports, tmp_path, monkeypatch, capsys):
    from include import cli

    apply_schema(reports["url"])  # as `crm warehouse start` does: dbt's tables to the pipeline
    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    monkeypatch.setenv("WAREHOUSE_URL", reports["url"])
    monkeypatch.setenv("SHOP_DB_URL", reports["url"])
    assert cli.main(["report", "--date", NIGHT.isoformat()]) == 0
    page = tmp_path / "reports" / NIGHT.isoformat() / "index.html"
    assert f"Nightly report of {NIGHT}: {page}" in capsys.readouterr().out
    # the same sections and numbers as the page written by the test's admin
    assert _sections(page.read_text()) == _sections(reports["index"].read_text())
    assert stat.S_IMODE((tmp_path / "reports").stat().st_mode) == 0o700

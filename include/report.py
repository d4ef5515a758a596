"""The nightly report: one self-contained HTML page per business date, for people.

What moved and whether to trust it, read from the marts and reporting tables
after publication (the nightly DAG's ``nightly_report`` task; ``crm report``):

1. sales: revenue and orders by channel, day by day, against the previous period
   of the same length (``marts.rpt_daily_kpis``);
2. segments: their sizes and how customers moved between them
   (``reporting.customer_segments``, ``marts.rpt_segment_transitions``);
3. churn: the distribution of churn risk and the size of the win-back list
   (``reporting.churn_scores``, ``reporting.winback_list``);
4. forecasts: sales by channel, forecast against actual with 80% and 95%
   intervals, and how right past forecasts were (``reporting.sales_forecast``,
   ``reporting.forecast_accuracy``);
5. service: complaints, SLA breaches and the follow-up queue
   (``marts.rpt_service_kpis_daily``, ``marts.rpt_complaint_followup_queue``);
6. cross-sell: the categories most often missing next to what peers buy
   (``marts.fct_cross_sell_gaps``);
7. trust: the night's quality gates and privacy verdict, with links to the GX
   Data Docs and the privacy evidence report.

Department views: a section is in a department's page only if the privacy
policy (contract/privacy.yml) lets that department read every table it reads,
so ``<date>/marketing.html`` holds no service queue and ``customer_service.html``
no churn list. The full page is ``<date>/index.html`` (management, data
engineers). Store operations gets no page yet: its rows are cut by region
(row-level security), and a page per region is still to come. Charts are Plotly, its script inlined once per page, so a page
opens offline and on a phone; every number shown is one query on a mart away.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg

from include.privacy import Policy, policy

PERIOD_DAYS = 28
"""The report's window: the last 28 days against the 28 before."""

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem;color:#222}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
.kpis{display:flex;flex-wrap:wrap;gap:.75rem;margin:.5rem 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:.5rem .75rem;min-width:9rem}
.kpi b{display:block;font-size:1.25rem}.up{color:#070}.down{color:#a00}
.chart{width:100%;min-height:340px}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.fail{color:#a00;font-weight:600}.pass{color:#070}nav a{margin-right:.75rem}
"""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    reads: tuple[str, ...]  # the relations it reads: who may see it (the policy)
    build: Callable[[psycopg.Connection, date, _Page], str]


class _Page:
    """Collects a page's charts: each a div the Plotly script fills on load."""

    def __init__(self) -> None:
        self.charts: list[str] = []

    def chart(self, figure) -> str:
        import plotly.io as pio

        figure.update_layout(
            margin={"l": 50, "r": 20, "t": 40, "b": 40},
            legend={"orientation": "h", "y": -0.2},
            template="plotly_white",
        )
        div = pio.to_html(
            figure,
            include_plotlyjs=False,
            full_html=False,
            config={"responsive": True, "displaylogo": False},
            default_width="100%",
            default_height="360px",
            div_id=f"chart-{len(self.charts) + 1}",
        )
        self.charts.append(div)
        return f'<div class="chart" data-chart="{len(self.charts)}">{div}</div>'


def _money(value) -> str:
    return "-" if value is None else f"HK${float(value):,.0f}"


def _count(value) -> str:
    return "-" if value is None else f"{int(value):,}"


def _change(now, before) -> str:
    if not before or now is None:
        return ""
    pct = (float(now) - float(before)) / float(before) * 100
    return f'<span class="{"up" if pct >= 0 else "down"}">{pct:+.1f}% vs previous</span>'


def _kpi(label: str, value: str, key: str, note: str = "") -> str:
    return (
        f'<div class="kpi"><span>{html.escape(label)}</span>'
        f'<b data-kpi="{key}">{html.escape(value)}</b>{note}</div>'
    )


def _table(headers: list[str], rows: list[tuple], key: str) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{v:,.2f}</td>'
            if isinstance(v, float)
            else f"<td>{html.escape('' if v is None else str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f'<table data-table="{key}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _daily_revenue(conn: psycopg.Connection, start: date, as_of: date) -> list[tuple]:
    """(day, online, store) net revenue of each day from ``start`` to ``as_of``."""
    return [
        (day, float(online or 0), float(store or 0))
        for day, online, store in conn.execute(
            "select business_date, online_revenue, store_revenue from marts.rpt_daily_kpis"
            " where business_date between %s and %s order by 1",
            (start, as_of),
        ).fetchall()
    ]


def _window(as_of: date) -> tuple[date, date, date]:
    """(start of this period, start of the previous one, as_of): 28 days each."""
    start = as_of - timedelta(days=PERIOD_DAYS - 1)
    return start, start - timedelta(days=PERIOD_DAYS), as_of


# -- sections -----------------------------------------------------------------


def _sales(conn: psycopg.Connection, as_of: date, page: _Page) -> str:
    import plotly.graph_objects as go

    start, previous, _ = _window(as_of)
    totals = conn.execute(
        """
        select (business_date >= %(start)s) as current_period,
            sum(online_revenue), sum(store_revenue), sum(total_revenue),
            sum(online_orders), sum(store_orders), sum(total_orders)
        from marts.rpt_daily_kpis
        where business_date between %(previous)s and %(as_of)s
        group by 1
        """,
        {"start": start, "previous": previous, "as_of": as_of},
    ).fetchall()
    now = next((t[1:] for t in totals if t[0]), (None,) * 6)
    before = next((t[1:] for t in totals if not t[0]), (None,) * 6)
    days = _daily_revenue(conn, start, as_of)
    figure = go.Figure(
        [
            go.Bar(name="online", x=[d[0] for d in days], y=[d[1] for d in days]),
            go.Bar(name="store", x=[d[0] for d in days], y=[d[2] for d in days]),
        ]
    )
    figure.update_layout(
        barmode="stack", title="Net revenue by day and channel (HK$)", yaxis_title="HK$"
    )
    kpis = "".join(
        [
            _kpi("Revenue", _money(now[2]), "revenue", _change(now[2], before[2])),
            _kpi("Online revenue", _money(now[0]), "online_revenue", _change(now[0], before[0])),
            _kpi("Store revenue", _money(now[1]), "store_revenue", _change(now[1], before[1])),
            _kpi("Orders", _count(now[5]), "orders", _change(now[5], before[5])),
        ]
    )
    return (
        f"<p>{start} to {as_of}, against the {PERIOD_DAYS} days before"
        f" (marts.rpt_daily_kpis).</p><div class='kpis'>{kpis}</div>" + page.chart(figure)
    )


def _segments(conn: psycopg.Connection, as_of: date, page: _Page) -> str:
    import plotly.graph_objects as go

    sizes = conn.execute(
        "select segment, count(*) from reporting.customer_segments where as_of_date = %s"
        " group by 1 order by 2 desc",
        (as_of,),
    ).fetchall()
    (period,) = conn.execute(
        "select max(to_period_end_date) from marts.rpt_segment_transitions"
        " where to_period_end_date <= %s",
        (as_of,),
    ).fetchone()
    moves = conn.execute(
        "select from_segment, to_segment, customers, from_period_end_date"
        " from marts.rpt_segment_transitions where to_period_end_date = %s",
        (period,),
    ).fetchall()
    parts = [
        _kpi("Customers segmented", _count(sum(n for _, n in sizes)), "segmented"),
    ]
    out = f"<div class='kpis'>{''.join(parts)}</div>"
    bar = go.Figure(go.Bar(x=[s for s, _ in sizes], y=[n for _, n in sizes]))
    bar.update_layout(title=f"Customers by segment on {as_of} (reporting.customer_segments)")
    out += page.chart(bar)
    if moves:
        names = sorted({m[0] for m in moves} | {m[1] for m in moves})
        grid = {(m[0], m[1]): m[2] for m in moves}
        heat = go.Figure(
            go.Heatmap(
                z=[[grid.get((f, t), 0) for t in names] for f in names],
                x=names,
                y=names,
                colorscale="Blues",
                hovertemplate="%{y} to %{x}: %{z} customers<extra></extra>",
            )
        )
        heat.update_layout(
            title=f"Moves between segments, {moves[0][3]} to {period}",
            xaxis_title="to",
            yaxis_title="from",
        )
        out += page.chart(heat)
    return out


def _churn(conn: psycopg.Connection, as_of: date, page: _Page) -> str:
    import plotly.graph_objects as go

    scores = conn.execute(
        "select churn_probability from reporting.churn_scores where as_of_date = %s",
        (as_of,),
    ).fetchall()
    bands = conn.execute(
        "select risk_band, count(*) from reporting.churn_scores where as_of_date = %s"
        " group by 1 order by 1",
        (as_of,),
    ).fetchall()
    (winback,) = conn.execute(
        "select count(*) from reporting.winback_list where as_of_date = %s", (as_of,)
    ).fetchone()
    kpis = _kpi("Win-back list", _count(winback), "winback") + "".join(
        _kpi(f"{band} risk", _count(n), f"risk_{band}") for band, n in bands
    )
    figure = go.Figure(go.Histogram(x=[s[0] for s in scores], nbinsx=20))
    figure.update_layout(
        title=f"Churn probability of scored customers on {as_of} (reporting.churn_scores)",
        xaxis_title="probability of no purchase in the horizon",
        yaxis_title="customers",
    )
    return f"<div class='kpis'>{kpis}</div>" + page.chart(figure)


def _forecasts(conn: psycopg.Connection, as_of: date, page: _Page) -> str:
    import plotly.graph_objects as go

    start, _, _ = _window(as_of)
    actual = {
        (channel, day): value
        for day, online, store in _daily_revenue(conn, start, as_of)
        for channel, value in (("online", online), ("store", store))
    }
    # the forecast made the night before each day (horizon 1): how right it was
    past = conn.execute(
        "select series_key, target_date, point, lo80, hi80 from reporting.sales_forecast"
        " where level = 'channel' and horizon_day = 1 and target_date between %s and %s",
        (start, as_of),
    ).fetchall()
    ahead = conn.execute(
        "select series_key, target_date, point, lo80, hi80, lo95, hi95"
        " from reporting.sales_forecast where level = 'channel' and as_of_date = %s"
        " order by 1, 2",
        (as_of,),
    ).fetchall()
    out = ""
    for channel in ("online", "store"):
        figure = go.Figure()
        days = sorted(d for c, d in actual if c == channel)
        figure.add_scatter(
            x=days, y=[actual[(channel, d)] for d in days], name="actual", mode="lines+markers"
        )
        made = sorted((r for r in past if r[0] == channel), key=lambda r: r[1])
        if made:
            figure.add_scatter(
                x=[r[1] for r in made],
                y=[r[2] for r in made],
                name="forecast the night before",
                mode="markers",
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [r[4] - r[2] for r in made],
                    "arrayminus": [r[2] - r[3] for r in made],
                },
            )
        coming = [r for r in ahead if r[0] == channel]
        if coming:
            x = [r[1] for r in coming]
            for lo, hi, name in ((5, 6, "95% interval"), (3, 4, "80% interval")):
                figure.add_scatter(
                    x=x + x[::-1],
                    y=[r[hi] for r in coming] + [r[lo] for r in coming][::-1],
                    fill="toself",
                    name=name,
                    line={"width": 0},
                    opacity=0.3,
                )
            figure.add_scatter(x=x, y=[r[2] for r in coming], name="forecast", mode="lines")
        figure.update_layout(title=f"{channel.title()} net revenue (HK$): actual and forecast")
        out += page.chart(figure)
    accuracy = conn.execute(
        "select period_type, period_start, level, series_key, horizon_bucket,"
        " round(forecast::numeric, 0)::float, round(actual::numeric, 0)::float,"
        " round(wape::numeric, 3)::float, round(coverage80::numeric, 2)::float"
        " from reporting.forecast_accuracy where level in ('total', 'channel')"
        " order by level, series_key, period_type, period_start desc"
    ).fetchall()
    out += "<h3>How right the forecasts were (reporting.forecast_accuracy)</h3>" + _table(
        [
            "period",
            "start",
            "level",
            "series",
            "horizon",
            "forecast",
            "actual",
            "WAPE",
            "80% coverage",
        ],
        accuracy,
        "forecast_accuracy",
    )
    return out


def _service(conn: psycopg.Connection, as_of: date, page: _Page) -> str:
    import plotly.graph_objects as go

    start, _, _ = _window(as_of)
    days = conn.execute(
        "select kpi_date, sum(tickets_created),"
        " sum(first_response_sla_breaches + resolution_sla_breaches)"
        " from marts.rpt_service_kpis_daily where kpi_date between %s and %s group by 1 order by 1",
        (start, as_of),
    ).fetchall()
    queue, overdue = conn.execute(
        "select count(*), count(*) filter (where is_overdue)"
        " from marts.rpt_complaint_followup_queue"
    ).fetchone()
    kpis = "".join(
        [
            _kpi("Complaints (28 days)", _count(sum(d[1] or 0 for d in days)), "complaints"),
            _kpi("SLA breaches (28 days)", _count(sum(d[2] or 0 for d in days)), "sla_breaches"),
            _kpi("Follow-up queue", _count(queue), "followup_queue"),
            _kpi("of which overdue", _count(overdue), "followup_overdue"),
        ]
    )
    figure = go.Figure(
        [
            go.Bar(name="complaints", x=[d[0] for d in days], y=[d[1] for d in days]),
            go.Scatter(name="SLA breaches", x=[d[0] for d in days], y=[d[2] for d in days]),
        ]
    )
    figure.update_layout(title="Complaints and SLA breaches by day (marts.rpt_service_kpis_daily)")
    return f"<div class='kpis'>{kpis}</div>" + page.chart(figure)


def _cross_sell(conn: psycopg.Connection, as_of: date, page: _Page) -> str:
    import plotly.graph_objects as go

    gaps = conn.execute(
        "select suggested_category, count(*) from marts.fct_cross_sell_gaps"
        " where suggestion_rank = 1 group by 1 order by 2 desc, 1 limit 10"
    ).fetchall()
    if not gaps:
        return "<p data-empty='cross_sell'>No customer has a cross-sell gap (marts.fct_cross_sell_gaps).</p>"
    figure = go.Figure(go.Bar(x=[n for _, n in gaps], y=[c for c, _ in gaps], orientation="h"))
    figure.update_layout(
        title="Customers whose first cross-sell gap is the category (marts.fct_cross_sell_gaps)",
        yaxis={"autorange": "reversed"},
    )
    return page.chart(figure)


def _trust(conn: psycopg.Connection, as_of: date, links: dict[str, str]) -> str:
    from expectations.privacy import verdict

    gates = conn.execute(
        """
        with latest as (
            select distinct on (gate, table_name, suite, expectation) gate, severity, success
            from ops.quality_results where business_date = %s
            order by gate, table_name, suite, expectation, checked_at desc
        )
        select gate, count(*) filter (where success),
            count(*) filter (where not success and severity = 'critical'),
            count(*) filter (where not success and severity = 'warning')
        from latest group by gate order by gate
        """,
        (as_of,),
    ).fetchall()
    privacy = verdict(conn, as_of)
    failed = [s for s, severity, _, bad in privacy if bad and severity == "critical"]
    state = (
        "not checked" if not privacy else ("FAILED: " + ", ".join(failed) if failed else "passed")
    )
    out = _table(
        ["gate", "checks passed", "critical failures", "warnings"],
        [tuple(g) for g in gates],
        "gates",
    )
    out += (
        f"<p>Privacy verdict: <b data-kpi='privacy' class='{'fail' if failed else 'pass'}'>"
        f"{html.escape(state)}</b></p>"
    )
    out += "<p>" + " ".join(
        f"<a href='{html.escape(href)}'>{html.escape(label)}</a>" for label, href in links.items()
    )
    return out + "</p>"


SECTIONS = (
    Section("sales", "Sales by channel", ("marts.rpt_daily_kpis",), _sales),
    Section(
        "segments",
        "Segments and how customers move",
        ("reporting.customer_segments", "marts.rpt_segment_transitions"),
        _segments,
    ),
    Section(
        "churn",
        "Churn risk and win-back",
        ("reporting.churn_scores", "reporting.winback_list"),
        _churn,
    ),
    Section(
        "forecasts",
        "Forecast against actual",
        ("reporting.sales_forecast", "reporting.forecast_accuracy", "marts.rpt_daily_kpis"),
        _forecasts,
    ),
    Section(
        "service",
        "Complaints and service",
        ("marts.rpt_service_kpis_daily", "marts.rpt_complaint_followup_queue"),
        _service,
    ),
    Section("cross_sell", "Cross-sell gaps", ("marts.fct_cross_sell_gaps",), _cross_sell),
)

FULL = "index"
"""The page with every section: management and data engineers."""


def sections_for(department: str | None, rules: Policy | None = None) -> list[Section]:
    """The sections a department may see: it may read every table each reads (all: None)."""
    if department is None:
        return list(SECTIONS)
    rules = rules or policy()
    return [s for s in SECTIONS if all(department in rules.readers(name) for name in s.reads)]


def render(
    conn: psycopg.Connection,
    as_of: date,
    *,
    department: str | None = None,
    links: dict[str, str] | None = None,
    rules: Policy | None = None,
) -> str:
    """The report of ``as_of`` as one HTML page: every section, or a department's."""
    from plotly.offline import get_plotlyjs

    page = _Page()
    shown = sections_for(department, rules)
    body = []
    for section in shown:
        try:
            with conn.transaction():
                content = section.build(conn, as_of, page)
        except psycopg.errors.UndefinedTable as exc:  # a retailer without that source
            content = f"<p>Not available: {html.escape(str(exc).splitlines()[0])}.</p>"
        body.append(f"<section id='{section.key}'><h2>{section.title}</h2>{content}</section>")
    body.append(
        f"<section id='trust'><h2>Can the data be trusted?</h2>"
        f"{_trust(conn, as_of, links or {})}</section>"
    )
    who = "all departments" if department is None else department.replace("_", " ")
    nav = "".join(f"<a href='#{s.key}'>{s.title}</a>" for s in shown)
    return "\n".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>CRM nightly report {as_of}</title><style>{STYLE}</style>",
            f"<script>{get_plotlyjs()}</script></head><body>",
            f"<h1>Nightly report, {as_of}</h1><p>For {html.escape(who)}.</p>",
            f"<nav>{nav}<a href='#trust'>Trust</a></nav>",
            *body,
            "</body></html>",
        ]
    )


FULL_PAGE_READERS = ("management", "data_engineer")
PER_REGION = ("store_operations",)
"""Departments whose rows are cut by region (row-level security): a page written by
the pipeline would hold every region's rows, so they get none yet."""


def departments_with_report(rules: Policy | None = None) -> list[str]:
    """The departments that get a page of their own (management reads the full one)."""
    rules = rules or policy()
    return sorted(d for d in rules.departments if d not in (*FULL_PAGE_READERS, *PER_REGION))


def write(warehouse_url: str, as_of: date, folder: Path, links: dict[str, str]) -> Path:
    """Write ``folder/<date>/index.html`` and one page per department (owner-only);
    the full page's path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = folder / as_of.isoformat()
    out.mkdir(exist_ok=True, mode=0o700)
    pages = {FULL: None, **{d: d for d in departments_with_report()}}
    with psycopg.connect(warehouse_url) as conn:
        for name, department in pages.items():
            page = render(conn, as_of, department=department, links=links)
            path = out / f"{name}.html"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(page)
    return out / f"{FULL}.html"

"""The report's page: one Jinja template (autoescaped) with its own CSS, rendered by
:func:`paycadence.report.html.render`; docs/report.md explains each section."""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Receivables report, {{ d.as_of }}</title>
<link rel="icon" href="data:,">
<style>
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f4f6f9; --navy:#1e3a5f;
        --red:#dc2626; --green:#16a34a; --amber:#d97706; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
header { background:linear-gradient(120deg,#1e3a5f,#27507f); color:#fff; padding:26px 0 22px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:650; letter-spacing:-.01em; }
header .meta { margin:0; opacity:.85; font-size:13.5px; }
.wrap { max-width:1240px; margin:0 auto; padding:0 24px; }
nav { position:sticky; top:0; z-index:10; background:#fff; border-bottom:1px solid var(--line); }
nav .wrap { display:flex; gap:18px; overflow-x:auto; white-space:nowrap; }
nav a { color:var(--muted); text-decoration:none; padding:11px 0; font-size:13px;
        border-bottom:2px solid transparent; }
nav a:hover { color:var(--navy); border-color:var(--navy); }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(210px,1fr)); gap:14px;
         margin:22px 0 6px; }
.card { background:#fff; border-radius:12px; padding:15px 17px 13px;
        box-shadow:0 1px 2px rgba(0,0,0,.05),0 1px 8px rgba(30,58,95,.06); }
.card .label { font-size:11.5px; text-transform:uppercase; letter-spacing:.06em;
               color:var(--muted); font-weight:600; }
.card .value { font-size:27px; font-weight:680; margin:3px 0 1px; letter-spacing:-.01em; }
.card .value small { font-size:14px; font-weight:500; color:var(--muted); }
.card .sub { font-size:12.5px; color:var(--muted); }
.up { color:var(--red); } .down { color:var(--green); }
section { background:#fff; border-radius:12px; margin:18px 0; padding:20px 22px 16px;
          box-shadow:0 1px 2px rgba(0,0,0,.05),0 1px 8px rgba(30,58,95,.06); }
section h2 { margin:0 0 4px; font-size:19px; color:var(--navy); }
section h3 { margin:16px 0 4px; font-size:15px; }
p.lead { margin:0 0 10px; color:var(--muted); max-width:920px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:22px; }
@media (max-width: 980px) { .grid2 { grid-template-columns:1fr; } }
.grid2 > div { min-width:0; }
.chart { min-height:200px; }
.note { background:#fff8e6; border-left:4px solid var(--amber); padding:9px 13px;
        border-radius:6px; margin:8px 0 12px; }
.note.info { background:#eef4fb; border-color:#2563eb; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th { text-align:left; color:var(--muted); font-weight:600; font-size:11.5px;
     text-transform:uppercase; letter-spacing:.04em; border-bottom:2px solid var(--line);
     padding:7px 8px; vertical-align:bottom; }
td { border-bottom:1px solid var(--line); padding:8px; vertical-align:top; }
tbody tr:nth-child(even) td { background:#fafbfc; }
td.group { background:#eef2f7 !important; font-weight:600; color:var(--navy);
           text-transform:uppercase; font-size:11.5px; letter-spacing:.05em; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.scroll { overflow-x:auto; }
.wl-tools { display:flex; flex-wrap:wrap; gap:8px; align-items:center; margin:8px 0; }
.wl-tools input, .wl-tools select, .wl-tools button { font:inherit; padding:4px 6px; }
table.inner { margin:6px 0; font-size:12px; } details summary.debtor { font-weight:600; }
.pill { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px;
        font-weight:600; white-space:nowrap; background:#e5e7eb; color:#374151; }
.pill.email { background:#dbeafe; color:#1e40af; } .pill.sms { background:#ccfbf1; color:#115e59; }
.pill.letter { background:#ede9fe; color:#5b21b6; }
.pill.phone { background:#ffedd5; color:#9a3412; }
.pill.payment_plan { background:#dcfce7; color:#166534; }
.pill.collection { background:#fee2e2; color:#991b1b; }
.tag { font-size:11px; color:var(--muted); }
.debtor { font-weight:600; white-space:nowrap;
          font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
ul.why { margin:0; padding:0; list-style:none; }
ul.why li { margin:0 0 2px; }
.eff { display:inline-block; min-width:66px; font-weight:650; font-variant-numeric:tabular-nums; }
.eff.raises { color:var(--red); } .eff.lowers { color:var(--green); }
.policy-why { color:var(--muted); font-size:12px; margin-top:3px; }
.worth { font-weight:650; }
details { margin:8px 0; } summary { cursor:pointer; color:var(--navy); }
img.logged { max-width:100%; border:1px solid var(--line); border-radius:8px; }
dl.defs { display:grid; grid-template-columns:190px 1fr; gap:6px 16px; margin:8px 0; }
dl.defs dt { font-weight:600; } dl.defs dd { margin:0; color:#374151; }
footer { color:var(--muted); font-size:12px; padding:8px 0 30px; }
code.path { background:none; color:inherit; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px;
       background:#f3f4f6; padding:0 4px; border-radius:4px; }
</style>
<script type="text/plain" id="plotly-packed">{{ plotlyjs }}</script>
<script>
// plotly.js comes gzipped in base85 (report/html.py, packed_plotly): unpack it, run it, then
// draw every chart in page order; "plotly-ready" tells whoever waits for the charts
window.paycadenceCharts = (async function () {
  var A = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
  var value = new Int16Array(128).fill(-1);
  for (var i = 0; i < A.length; i++) { value[A.charCodeAt(i)] = i; }
  var text = document.getElementById("plotly-packed").textContent.replace(/\s+/g, "");
  var whole = Math.floor(text.length / 5), tail = text.length % 5;
  var out = new Uint8Array(whole * 4 + (tail ? tail - 1 : 0)), at = 0;
  for (var g = 0; g * 5 < text.length; g++) {
    var n = 0, k;
    for (k = 0; k < 5; k++) {
      var c = g * 5 + k < text.length ? value[text.charCodeAt(g * 5 + k)] : 84;
      n = n * 85 + c;
    }
    var bytes = [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
    var take = g * 5 + 5 <= text.length ? 4 : tail - 1;
    for (k = 0; k < take; k++) { out[at++] = bytes[k]; }
  }
  var stream = new Blob([out]).stream().pipeThrough(new DecompressionStream("gzip"));
  var js = await new Response(stream).text();
  var lib = document.createElement("script"); lib.text = js; document.head.appendChild(lib);
  await new Promise(function (done) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", done);
    } else { done(); }
  });
  document.querySelectorAll('script[type="text/x-paycadence-chart"]').forEach(function (s) {
    var run = document.createElement("script"); run.text = s.textContent; s.replaceWith(run);
  });
  window.dispatchEvent(new Event("plotly-ready"));
})();
</script>
</head>
<body>
<header><div class="wrap">
  <h1>Receivables report{% if d.book %}: {{ d.book }}{% endif %}</h1>
  <p class="meta">As of <b>{{ d.as_of }}</b>: the book as known that morning (invoices issued
  up to that day, payments up to {{ last_closed }}) · data
  <code class="path">{{ d.data_dir }}</code> · amounts in {{ d.currency }}
  {%- if d.currency_note %} ({{ d.currency_note }}){% endif %}
  · decisions by {{ d.model_version }}</p>
  <p class="meta verdict"><b>Can the policy be trusted?</b>
  {% if ope_verdict %}On the book's logged decisions, today's policy {{ ope_verdict }}
  ({{ d.currency }}, doubly robust; "Policy vs schedule" below).
  {%- else %}Not told by this book: {{ d.ope.note }} (it needs logged decisions with
  propensities, decisions.csv).{% endif %}</p>
</div></header>
<nav><div class="wrap">
  <a href="#overview">Overview</a><a href="#dso">DSO &amp; CEI</a>
  <a href="#ageing">Ageing &amp; cash</a>
  <a href="#discipline">Payment discipline</a><a href="#changes">Behaviour changes</a>
  <a href="#worklist">Today's worklist</a><a href="#models">Models</a>
  <a href="#drivers">What drives risk</a><a href="#policy">Policy vs schedule</a>
  <a href="#data">Data &amp; definitions</a>
</div></nav>
<main class="wrap">
{% if fallback %}
<div class="note" style="margin-top:18px">No champion model could be loaded
({{ d.model_detail }}). Recommendations and forecasts use the rule-based fallback (the naive
reference): run <code>paycadence train</code> to learn the models.</div>
{% endif %}

<div class="cards" id="overview">
  <div class="card"><div class="label">Open receivables</div>
    <div class="value">{{ k.receivables|money }} <small>{{ d.currency }}</small></div>
    <div class="sub">{{ k.overdue|money }} overdue
      ({{ (k.overdue / k.receivables if k.receivables else None)|pct }})</div></div>
  <div class="card"><div class="label">DSO (90 days)</div>
    <div class="value">{{ k.dso|days }} <small>days</small></div>
    <div class="sub">{% if delta %}<span class="{{ 'up' if delta.days > 0 else 'down' }}">
      {{ '▲' if delta.days > 0 else '▼' }} {{ (delta.days|abs)|days }} days</span>
      since {{ delta.since }}{% else %}no earlier month to compare{% endif %}</div></div>
  <div class="card"><div class="label">Countback DSO</div>
    <div class="value">{{ k.countback_dso|days }} <small>days</small></div>
    <div class="sub">the balance matched to the latest months' sales</div></div>
  <div class="card"><div class="label">Best possible DSO</div>
    <div class="value">{{ k.best_possible_dso|days }} <small>days</small></div>
    <div class="sub">if every invoice were paid when due</div></div>
  <div class="card"><div class="label">Average days delinquent</div>
    <div class="value">{{ k.add|days }} <small>days</small></div>
    <div class="sub">DSO − best possible: what late payment costs</div></div>
  <div class="card"><div class="label">CEI (90 days)</div>
    <div class="value">{{ k.cei|num(1) }}<small>%</small></div>
    <div class="sub">collected of what could have been</div></div>
  <div class="card"><div class="label">Unpaid 90 days after due</div>
    <div class="value">{{ d.unpaid_90d|pct(1) }}</div>
    <div class="sub">of value due in the year to {{ unpaid_window_end }}</div></div>
  <div class="card"><div class="label">Contacts today</div>
    <div class="value">{{ d.worklist|length }}
      <small>of {{ d.recommendations }} debtors</small></div>
    <div class="sub">{{ named|money }} {{ d.currency }} named in them</div></div>
  <div class="card"><div class="label">Expected cash, 4 weeks</div>
    <div class="value">{{ cash4|money }} <small>{{ d.currency }}</small></div>
    <div class="sub">{{ cash13|money }} over 13 weeks</div></div>
</div>

<section id="dso">
  <h2>DSO and collection effectiveness</h2>
  <p class="lead">Each point is computed on the morning of a month's last day (and today) over
  the 90 days before it. The gap between DSO and best possible DSO is the average days
  delinquent (bars): the part of DSO caused by late payment.</p>
  <div class="grid2">
    <div>{{ charts.trend or 'Too little history for a trend.' }}</div>
    <div><h3 style="margin-top:0">Collection effectiveness index</h3>
      {{ charts.cei or '' }}</div>
  </div>
</section>

<section id="ageing">
  <h2>Ageing and expected cash</h2>
  <p class="lead">Open amounts by days past due today, and the money the forecasts expect in
  each of the next 13 weeks (week 1 starts today).</p>
  <div class="grid2">
    <div><h3 style="margin-top:0">Ageing by value</h3>{{ charts.ageing }}
      <table><thead><tr><th>days past due</th><th class="n">open</th><th class="n">invoices</th>
      <th class="n">share</th></tr></thead><tbody>
      {% for r in d.ageing.iter_rows(named=True) %}<tr><td>{{ r.bucket }}</td>
      <td class="n">{{ r.open_amount|money(2) }}</td><td class="n">{{ r.invoices }}</td>
      <td class="n">{{ r.share|pct(1) }}</td></tr>{% endfor %}</tbody></table></div>
    <div><h3 style="margin-top:0">Cash forecast, next 13 weeks</h3>
      {{ charts.cash or 'No open invoice: no cash to expect.' }}</div>
  </div>
</section>

<section id="discipline">
  <h2>Payment discipline</h2>
  <p class="lead">Invoices paid in the 12 months before today: the share paid after the due
  date (by count and by value) and the value-weighted mean days late (an early payment counts
  0). ADD per group: its overdue receivables ÷ its credit sales of the last 90 days × 90.</p>
  <div class="grid2">{% for by in ('segment', 'country') %}<div><h3>By {{ by }}</h3>
    {{ charts[by] or 'No invoice paid in the last 12 months.' }}</div>{% endfor %}</div>
  <div class="scroll"><table><thead><tr><th>group</th><th class="n">paid, 12 months</th>
    <th class="n">paid late</th><th class="n">value paid late</th>
    <th class="n">mean days late</th><th class="n">open</th><th class="n">overdue</th>
    <th class="n">ADD (days)</th></tr></thead>
    {% for by, frame in (('segment', d.by_segment), ('country', d.by_country)) %}<tbody>
    <tr><td colspan="8" class="group">by {{ by }}</td></tr>
    {% for r in frame.iter_rows(named=True) %}<tr><td>{{ r[by] }}</td>
    <td class="n">{{ r.paid }}</td><td class="n">{{ r.share_late|pct }}</td>
    <td class="n">{{ r.share_value_late|pct }}</td><td class="n">{{ r.mean_days_late|days }}</td>
    <td class="n">{{ r.open_amount|money }}</td><td class="n">{{ r.overdue_amount|money }}</td>
    <td class="n">{{ r.add|days }}</td></tr>{% endfor %}</tbody>{% endfor %}</table></div>
  <h3>By month of payment</h3>
  {{ charts.monthly or 'No invoice paid in the last 12 months.' }}
</section>

<section id="changes">
  <h2>Debtors whose payment behaviour changed</h2>
  <p class="lead">Debtors with at least 6 paid invoices whose recent invoices due were paid late
  (or are still open) far more often than their own long-run rate, or whose recent payments
  came 10+ days later than usual. A sudden change deserves a call.</p>
  {% if d.changed %}<div class="scroll"><table><thead><tr><th>debtor</th><th class="n">open</th>
  <th class="n">overdue</th><th class="n">paid late, long run</th>
  <th class="n">late, last 5 due</th><th class="n">days late, long run → recent</th>
  <th>what changed</th><th>today</th></tr></thead>
  <tbody>{% for c in d.changed[:changed_shown] %}<tr><td class="debtor">{{ c.debtor_id }}</td>
  <td class="n">{{ c.open_amount|money(2) }}</td><td class="n">{{ c.overdue_amount|money(2) }}</td>
  <td class="n">{{ c.share_late|pct }}</td><td class="n">{{ c.late_last_5_due|pct }}</td>
  <td class="n">{{ c.mean_days_late|days }} → {{ c.mean_days_late_last_5|days }}</td>
  <td>{{ c.signals|join('; ') }}</td>
  <td><span class="pill {{ c.action }}">{{ labels.get(c.action, c.action) }}</span>
  {%- if c.action == 'wait' %}<br><span class="tag">until {{ c.until or 'the next call' }}:
  {{ c.why }}</span>{% endif %}</td>
  </tr>{% endfor %}</tbody></table></div>
  {% if d.changed|length > changed_shown %}<p class="tag">… and
  {{ d.changed|length - changed_shown }} more with less open.</p>{% endif %}
  {% else %}<p>No debtor with an open invoice shows a sudden change today.</p>{% endif %}
</section>

<section id="worklist">
  <h2>Today's worklist</h2>
  <p class="lead">Every debtor the policy contacts today, the most valuable contact first.
  <b>Worth</b> = what the contact is expected to bring in against waiting, learnt from this
  book's log, minus its cost: the same figure as the recommendation's <code>value_vs_wait</code>
  in the API and the CSV, and as "is worth … against" in its reason. A contact nothing learnt
  valued (no model, or a book without a log) is <i>not valued</i>: the amount it names is shown
  as at stake, and such contacts come after the valued ones. Reasons are the model's top
  factors behind the risk of late payment; the points are how much each one moves it.</p>
  {% if d.worklist %}<div class="wl-tools">
  <input id="wl-search" type="search" placeholder="search a debtor" aria-label="search a debtor">
  {% for key, label in (('action', 'action'), ('segment', 'segment'), ('country', 'country')) %}
  <select id="wl-{{ key }}" aria-label="{{ label }}"><option value="">every {{ label }}</option>
  {% for v in wl_options[key] %}<option>{{ v }}</option>{% endfor %}</select>{% endfor %}
  <button type="button" id="wl-csv">Download the worklist (CSV, all {{ d.worklist|length }})
  </button><span class="tag" id="wl-found"></span></div>
  <div class="scroll"><table id="worklist-table"><thead><tr><th data-key="rank" data-num>#</th>
  <th data-key="debtor">debtor</th>
  <th data-key="action">action</th><th class="n" data-key="open" data-num>open</th>
  <th class="n" data-key="dpd" data-num>days<br>past due</th>
  <th class="n" data-key="plate" data-num>risk: unpaid<br>in 7 days / 90d</th>
  <th class="n" data-key="worth" data-num>worth</th>
  <th style="min-width:300px">why</th>
  <th data-key="review">next<br>review</th></tr></thead><tbody>
  {% for w in shown %}<tr data-rank="{{ loop.index }}" data-debtor="{{ w.debtor_id }}"
    data-action="{{ w.action }}" data-segment="{{ w.segment or '' }}"
    data-country="{{ w.country or '' }}" data-open="{{ w.open_amount }}"
    data-dpd="{{ w.max_days_past_due if w.max_days_past_due is not none else '' }}"
    data-plate="{{ w.p_open_7d }}" data-worth="{{ w.value if w.value is not none else '' }}"
    data-review="{{ w.next_review_on }}">
    <td class="n">{{ loop.index }}</td>
    <td><details><summary class="debtor">{{ w.debtor_id }}</summary>
      <table class="inner"><thead><tr><th>open invoice</th><th class="n">open</th>
      <th class="n">days past due</th><th class="n">p_late</th>
      <th class="n">unpaid in 7 days</th></tr></thead><tbody>
      {% for i in w.open_invoices %}<tr><td>{{ i.invoice_id }}{% if i.named %} ●{% endif %}</td>
      <td class="n">{{ i.open_amount|money(2) }}</td>
      <td class="n">{{ '%.0f'|format(i.days_past_due) if i.days_past_due is not none
        else '' }}</td>
      <td class="n">{{ i.p_late|pct }}</td><td class="n">{{ i.p_open_7d|pct }}</td></tr>
      {% endfor %}</tbody></table>
      <p class="tag">● named in today's action. Latest contacts:
      {% for c in w.contacts %}{{ c.sent_on }} {{ c.channel }}{% if c.step %} (reminder
      {{ c.step }}){% endif %} on {{ c.invoice_id }}{{ '; ' if not loop.last else '' }}
      {%- else %}none on record{% endfor %}.</p></details>
      <span class="tag">{{- [w.segment, w.country]|select|join(' · ') }}</span></td>
    <td><span class="pill {{ w.action }}">{{ labels.get(w.action, w.action) }}</span>
      {% if w.step %}<br><span class="tag">reminder {{ w.step }}</span>{% endif %}
      {% if w.explored %}<br><span class="tag">exploring</span>{% endif %}</td>
    <td class="n">{{ w.open_amount|money(2) }}<br><span class="tag">{{ w.invoice_ids|length }}
      invoice{{ '' if w.invoice_ids|length == 1 else 's' }} named</span></td>
    <td class="n">{{ '%.0f'|format(w.max_days_past_due) if w.max_days_past_due is not none
      else 'n/a' }}</td>
    <td class="n">{{ w.p_open_7d|pct }} / {{ w.p_unpaid_90d|pct }}</td>
    <td class="n">{% if w.value is not none %}<span class="worth">{{ w.value|money(2) }}</span>
      <br><span class="tag">{{ w.gain|money(2) }} − {{ w.cost|money(2) }}</span>
      {%- else %}<span class="tag">not valued<br>{{ w.at_stake|money(2) }} at stake</span>
      {%- endif %}</td>
    <td><ul class="why">{% for r in w.reasons %}<li>{% if r.points is not none %}<span
      class="eff {{ r.effect or '' }}">{{ '▲' if r.points > 0 else '▼' }}
      {{ r.points|points }} pts</span>{% elif r.effect %}<span class="eff {{ r.effect }}">
      {{ '▲' if r.effect == 'raises' else '▼' }}</span>{% endif %}
      {{ r.text }}</li>{% endfor %}</ul>
      <div class="policy-why">{{ w.why }}</div></td>
    <td style="white-space:nowrap">{{ w.next_review_on }}</td></tr>{% endfor %}
  </tbody></table></div>
  <script type="application/json" id="wl-data">{{ wl_rows|tojson }}</script>
  {% if hidden %}<p class="tag">… and {{ hidden }} more contacts of lower worth: the search
  finds them, and the CSV (and <code>paycadence recommend</code>) holds them all.</p>{% endif %}
  {% else %}<p>No contact today: every debtor with an open invoice is best left waiting.</p>
  {% endif %}
</section>

<section id="models">
  <h2>How good the forecasts are</h2>
  {% if d.champion.found %}
  <p class="lead">{{ d.champion.detail }}{% if d.champion.tags.get('split_date') %}, scored at
  training on a holdout of {{ d.champion.tags.get('holdout_rows', '?') }} invoice-days from
  {{ d.champion.tags.split_date }} on (never learnt from){% endif %}. Each figure stands beside
  the strongest simple reference it must beat: for p_late the best of the debtor's share of late
  invoices (smoothed, shrunk toward the book's rate, or recency-weighted), for days late its
  median shrunk toward the book's (docs/models.md).</p>
  {% else %}
  <div class="note">No champion model: {{ d.champion.detail }}. Holdout metrics are not
  available; the recent check below scores the simple references only.</div>
  {% endif %}
  <div class="grid2">
    <div><h3 style="margin-top:0">AUC against the best simple reference</h3>
      {{ charts.auc or 'No AUC recorded.' }}
      {% if metric_rows %}<table><thead><tr><th>forecast</th><th>metric</th>
      <th class="n">model</th><th class="n">reference</th></tr></thead><tbody>
      {% for r in metric_rows %}<tr><td>{{ r[0] }}</td>
      <td>{{ r[1] }}</td><td class="n">{{ r[2] }}</td><td class="n">{{ r[3] }}</td></tr>
      {% endfor %}</tbody></table>{% endif %}</div>
    <div><h3 style="margin-top:0">Calibration: forecast against what happened</h3>
      {% if d.check %}<p class="lead">Invoices not yet due on {{ d.check.days|length }} days
      from {{ d.check.days[0] }} to {{ d.check.days[-1] }} ({{ d.check.rows }} invoice-days whose
      outcome is known today{% if d.champion.split_date and not fallback %}; none before the
      model's holdout split{% endif %}), beside the best simple reference on them (the debtor's
      {{ {'laplace': 'share late, smoothed', 'shrunk': 'share late shrunk toward the book\'s',
          'recent': 'recency-weighted share late'}.get(d.check.reference,
          d.check.reference) }}). On the diagonal, a forecast of 30% means 30% of those
      invoices were paid late.</p>{{ charts.calibration }}
      {% else %}<div class="note info">No invoice-day of the last 6 months (after the model's
      holdout split) has a known outcome yet: no recent calibration check.</div>{% endif %}
      {% if calibration_png %}<details><summary>The holdout calibration figure logged when the
      champion was trained</summary><img class="logged" alt="calibration on the holdout"
      src="{{ calibration_png }}"></details>{% endif %}</div>
  </div>
  {% if d.champion.found %}
  <h3>Promotion by value</h3>
  {% if value_rows %}<p class="lead">When it was trained, its policy was valued off-policy on
  the {{ value_decisions|money }} logged decisions of its holdout period, and so was the
  champion it was compared with, on the same decisions: what a decision earned within 30 days
  (discounted) minus its cost, doubly robust, with a 95% bootstrap interval over debtors. A new
  model becomes champion only when its lower bound is at least the champion's (and its
  forecasts are no worse).</p>
  <table><thead><tr><th>policy</th><th class="n">value per decision</th>
  <th class="n">95% interval</th></tr></thead><tbody>{% for row in value_rows %}<tr>
  <td>{{ row[0] }}</td><td class="n">{{ row[1]|money(2) }}</td>
  <td class="n">{{ row[2]|money(2) }} … {{ row[3]|money(2) }}</td></tr>{% endfor %}</tbody></table>
  {% else %}<div class="note info">No value recorded at training: its data had no logged
  decisions with propensities (<code>decisions.csv</code>) in the holdout period, so forecast
  quality alone decided the promotion.</div>{% endif %}
  {% if promotion %}<p class="tag">Why it is champion: {{ promotion }}</p>{% endif %}
  {% endif %}
</section>

<section id="drivers">
  <h2>What drives the risk of late payment</h2>
  {% if charts.shap %}<p class="lead">Global SHAP importance of the deployed model: the mean
  absolute contribution of each feature to the log-odds of paying late, over the
  {{ d.shap['rows'][0] }} open invoices of today's worklist. Red: on average it raises the
  risk here; green: it lowers it. docs/features.md words each feature.</p>{{ charts.shap }}
  {% else %}<p>Not available: {{ 'no model is deployed (rule-based fallback)' if fallback
  else 'nobody is on the worklist today' }}.</p>{% endif %}
</section>

<section id="policy">
  <h2>The policy against the fixed schedule</h2>
  <h3>Off-policy estimate on the logged decisions</h3>
  {% if d.ope.result %}{% set r = d.ope.result %}
  <p class="lead">The logged decisions from {{ d.ope.start }} to {{ d.ope.end }} (before the
  last 30 days, so their outcome is known): what each earned within 30 days (discounted) minus
  its cost, under the logging policy as it was, and as estimated for today's policy
  ({{ d.model_version }}) with the same estimators as <code>paycadence evaluate</code>. Bars:
  value per decision; whiskers: 95% bootstrap intervals over debtors.</p>
  <div class="grid2"><div>{{ charts.ope }}</div><div>
  <table><thead><tr><th>estimate</th><th class="n">value per decision</th>
  <th class="n">95% interval</th></tr></thead><tbody>{% for row in ope_rows %}<tr>
  <td>{{ row[0] }}</td><td class="n">{{ row[1]|money(2) }}</td>
  <td class="n">{{ row[2]|money(2) }} … {{ row[3]|money(2) }}</td></tr>{% endfor %}</tbody></table>
  <p>{{ r.decisions }} decisions; today's policy would have taken the logged action in
  {{ r.supported }} ({{ r.agreement|pct }}); effective sample size {{ r.effective_n|money }}.
  Doubly robust, today's policy <b>{{ ope_verdict }}</b> ({{ d.currency }}; the
  interval is of the difference, from the same resamples of debtors).</p>
  </div></div>
  {% else %}<div class="note info">Not available: {{ d.ope.note }}.</div>{% endif %}
  <h3>Backtest</h3>
  {% if d.backtest %}<p class="lead">Latest backtest run logged in MLflow
  ({{ d.backtest.run_id }}, experiment {{ d.backtest.experiment }},
  {{ d.backtest.started.strftime('%Y-%m-%d %H:%M') }} UTC). It ran on a simulated company
  ({{ d.backtest.params.get('world', 'project') }} world, {{ d.backtest.params.get('debtors',
  '?') }} debtors, seed {{ d.backtest.params.get('seed', '?') }}), not on this book: it shows how
  the policy behaves against the schedule and the oracle, not what it earns here (that is the
  off-policy estimate above).</p>
  {{ charts.backtest or '' }}
  {% for name, src in backtest_pngs.items() %}
  <img class="logged" alt="{{ name }}" src="{{ src }}">{% endfor %}
  <details><summary>All its metrics</summary><table><tbody>
  {% for key, v in d.backtest.metrics|dictsort %}<tr><td>{{ key }}</td>
  <td class="n">{{ v|num(4) }}</td></tr>{% endfor %}</tbody></table></details>
  {% else %}<div class="note info">Not available: no backtest run is logged in MLflow.
  <code>paycadence backtest</code> replays a simulated company under the fixed schedule, no
  dunning and the learnt policy, and prints the comparison.</div>{% endif %}
</section>

<section id="data">
  <h2>Data and definitions</h2>
  <p class="lead">Read from <code>{{ d.data_dir }}</code> and validated like
  <code>paycadence ingest</code>: {{ quarantined }} rows quarantined
  {%- if quarantined %} (with row numbers and reasons in
  <code>{{ d.quarantine_dir }}/quarantine.csv</code>){% endif %}.</p>
  <div class="scroll"><table><thead><tr><th>table</th><th class="n">rows read</th>
  <th class="n">kept</th><th class="n">quarantined</th></tr></thead><tbody>
  {% for name, c in d.ingest.counts.items() %}<tr><td>{{ name }}</td>
  <td class="n">{{ c.read }}</td>
  <td class="n">{{ c.kept }}</td><td class="n">{{ c.quarantined }}</td></tr>{% endfor %}
  </tbody></table></div>
  <dl class="defs">
    <dt>Receivables</dt><dd>Open amounts on the morning of the report day: invoices issued on
    or before it, less payments dated before it.</dd>
    <dt>DSO</dt><dd>Receivables ÷ credit sales of the 90 days ending on the day × 90.</dd>
    <dt>Countback DSO</dt><dd>The receivables matched against the sales of the current month,
    then each month before it, until a month's sales cover what is left; the days of the months
    walked through plus the covered share of the last one.</dd>
    <dt>Best possible DSO</dt><dd>Current (not yet due) receivables ÷ credit sales × 90.</dd>
    <dt>ADD</dt><dd>DSO − best possible DSO = overdue receivables ÷ credit sales × 90.</dd>
    <dt>CEI</dt><dd>(opening receivables + credit sales − closing receivables) ÷ (opening
    receivables + credit sales − closing current receivables) × 100, over the 90 days.</dd>
    <dt>Ageing</dt><dd>Open amount by days past due on the report day: current (not yet due),
    1-30, 31-60, 61-90, 90+.</dd>
    <dt>Unpaid after 90 days</dt><dd>Of the value of invoices due in the year up to 91 days
    before the report day, the share still unpaid 90 days after its due date.</dd>
  </dl>
  <p>docs/report.md explains every section and measure in full.</p>
</section>
</main>
<script>
// the worklist: search, filters, sorting by a column, the whole list as CSV
(function () {
  var table = document.getElementById("worklist-table");
  if (!table) { return; }
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var all = JSON.parse(document.getElementById("wl-data").textContent);
  var q = function (id) { return document.getElementById(id); };
  function apply() {
    var text = q("wl-search").value.trim().toLowerCase(), shown = 0;
    var want = {action: q("wl-action").value, segment: q("wl-segment").value,
                country: q("wl-country").value};
    rows.forEach(function (r) {
      var ok = (!text || r.dataset.debtor.toLowerCase().indexOf(text) >= 0) &&
        Object.keys(want).every(function (k) { return !want[k] || r.dataset[k] === want[k]; });
      r.style.display = ok ? "" : "none"; shown += ok ? 1 : 0;
    });
    var extra = "";
    if (text) {
      var hits = all.filter(function (w) {
        return w.debtor.toLowerCase().indexOf(text) >= 0 && w.rank > rows.length; });
      extra = hits.slice(0, 5).map(function (w) {
        return w.debtor + ": #" + w.rank + ", " + w.action + (w.worth === null ? "" :
          ", worth " + w.worth.toFixed(2)); }).join("; ");
    }
    q("wl-found").textContent = shown + " shown" +
      (extra ? "; further down the list: " + extra : "");
  }
  ["wl-search", "wl-action", "wl-segment", "wl-country"].forEach(function (id) {
    q(id).addEventListener("input", apply); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    if (!th.dataset.key) { return; }
    th.style.cursor = "pointer"; th.title = "sort";
    th.addEventListener("click", function () {
      var key = th.dataset.key, num = th.hasAttribute("data-num");
      var up = th.dataset.dir !== "up"; th.dataset.dir = up ? "up" : "down";
      rows.sort(function (a, b) {
        var x = a.dataset[key], y = b.dataset[key];
        if (num) { x = x === "" ? -Infinity : +x; y = y === "" ? -Infinity : +y; }
        return (x > y ? 1 : x < y ? -1 : 0) * (up ? 1 : -1);
      });
      rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
    });
  });
  q("wl-csv").addEventListener("click", function () {
    var cols = ["rank", "debtor", "action", "segment", "country", "open", "days_past_due",
                "p_late", "p_open_7d", "worth", "next_review", "invoice_ids", "why"];
    var cell = function (v) { v = v === null || v === undefined ? "" : String(v);
      return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; };
    var lines = [cols.join(",")].concat(all.map(function (w) {
      return cols.map(function (c) { return cell(w[c]); }).join(","); }));
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], {type: "text/csv"}));
    link.download = "worklist-{{ d.as_of }}.csv"; link.click();
  });
})();
// charts are drawn once plotly.js is unpacked: fit each one to its final box once laid out
window.addEventListener("plotly-ready", function () {
  document.querySelectorAll(".js-plotly-plot").forEach(function (p) { Plotly.Plots.resize(p); });
});
</script>
<footer><div class="wrap">paycadence · receivables report as of {{ d.as_of }} ·
{{ d.model_detail }}</div></footer>
</body>
</html>
"""

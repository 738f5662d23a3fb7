"""The HTML pages: one self-contained file each, well-formed (html5lib strict), and rendered in
a real browser (headless Chromium) without console errors."""

import base64
import re
import shutil
import subprocess
import tempfile

import html5lib
import pytest

from harness.cli import main
from harness.report.html import page
from harness.report.table import comparison_table, load_runs, write_report
from harness.report.trend import write_trend
from harness.results.records import update_manifest
from tests.report.test_report import SHA, figures, make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install it with `apt-get install chromium` "
                             "(scripts/setup.sh does)")


def parse(text: str):
    """Strict HTML5 parse: malformed markup (a stray or missing end tag) raises."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)


def layer_records(board="uno", variant="emlearn-trees", layers=(("conv1", 5000), ("dense", 1200))):
    base = dict(board=board, backend="simavr", model="iris", variant=variant, firmware_sha256=SHA,
                fidelity="cycle-accurate", metric="layer_cycles", unit="cycles",
                statistic="median", n=20)
    return [dict(base, value=value, detail=name) for name, value in layers]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two complete runs (uno on simavr with energy and per-layer cycles, native) and one that
    died half way on qemu-system-avr (functional: its time is not a device figure). Built once:
    the tests only read it."""
    root = tmp_path_factory.mktemp("html") / "results"
    uno = (figures("uno", "simavr", "cycle-accurate", "emlearn-trees", accuracy=93.3,
                   latency=850.0, flash=9000, flash_limit=32256, fits=1)
           + figures("uno", "simavr", "cycle-accurate", "m2cgen", accuracy=96.7,
                     latency=15500.0, flash=40100, flash_limit=32256, fits=0)
           + figures("uno", "simavr", "cycle-accurate", "forest", accuracy=95.0,
                     latency=2000.0, flash=12000, flash_limit=32256, fits=1)
           + layer_records())
    uno.append(dict(uno[0], fidelity="modelled", metric="energy_uj", value=42.5, unit="uJ",
                    statistic="median"))
    run = make_run(root, "20261128-100000-aaaa", uno)
    update_manifest(run, targets=[{"board": "uno", "backend": "simavr", "variant": "m2cgen",
                                   "url": "/dev/pts/7", "fidelity": "cycle-accurate",
                                   "emulator": "/cache/tinyhil-simavr"}])
    make_run(root, "20261128-110000-bbbb",
             figures("native", "native", "wall-clock", "emlearn-trees", accuracy=93.3, latency=2.1))
    qemu = figures("uno", "qemu", "functional", "emlearn-trees", accuracy=93.3, latency=700.0)
    qemu.append(dict(qemu[0], fidelity="wall-clock", metric="host_roundtrip_ms", value=45.0,
                     unit="ms", statistic="value"))
    make_run(root, "20261128-120000-cccc", qemu, status=None)
    return root


@pytest.fixture(scope="module")
def report(results):
    written = write_report([results], results.parent / "report")
    return written["report.html"], comparison_table(load_runs([results]))


def cells(doc, board):
    """{(variant, backend): {header: <td>}} of one board's table."""
    table = doc.find(f".//table[@id='table-{board}']")
    headers = ["".join(th.itertext()).strip() for th in table.find("thead").iter("th")]
    out = {}
    for tr in table.find("tbody").iter("tr"):
        tds = list(tr.iter("td"))
        row = dict(zip(headers, tds))
        variant = "".join(row["variant"].itertext()).replace("incomplete", "").strip()
        out[(variant, "".join(row["backend"].itertext()))] = row
    return out


def text(td) -> str:
    return "".join(td.itertext()).strip()


def column(row, name):
    return next(td for header, td in row.items() if header.startswith(name))


def test_page_is_one_well_formed_file_with_no_external_asset(report):
    path, _ = report
    html = path.read_text(encoding="utf-8")
    doc = parse(html)
    assert doc.find(".//link") is None and not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    images = doc.findall(".//img")
    assert {img.get("alt") for img in images} == {
        "uno: latency vs accuracy", "uno: energy vs latency", "uno: cycles per layer",
        "native: latency vs accuracy"}
    for img in images:
        kind, data = img.get("src").split(",", 1)
        assert kind == "data:image/svg+xml;base64"
        assert b"<svg" in base64.b64decode(data)
    assert doc.find(".//style").text and doc.find(".//script").text   # inline, not linked
    assert "@media print" in doc.find(".//style").text


def test_strict_parse_rejects_malformed_markup():
    good = page("t", "<p>summary</p>", "<section><table><tbody><tr><td>1</td></tr></tbody></table></section>")
    parse(good)
    with pytest.raises(html5lib.html5parser.ParseError):
        parse(good.replace("</section>", "", 1))


def test_table_has_human_units_best_marks_and_fidelity(report):
    path, table = report
    uno = cells(parse(path.read_text(encoding="utf-8")), "uno")
    fast, accurate = uno[("emlearn-trees", "simavr")], uno[("m2cgen", "simavr")]
    assert text(column(fast, "latency median")).startswith("850 µs")
    assert text(column(accurate, "latency median")).startswith("15.5 ms")
    assert text(column(fast, "flash")).startswith("8.8 / 31.5")          # KiB used / limit
    assert "9,000 B of 32,256 B" in column(fast, "flash").get("title")
    # Lower latency and flash are better, higher accuracy is (metrics.Column.better).
    assert "best" in column(fast, "latency median").get("class")
    assert "best" not in column(accurate, "latency median").get("class")
    # The most accurate variant does not fit the board: it is the best of nothing.
    assert "best" not in column(accurate, "accuracy").get("class")
    assert "best" in column(uno[("forest", "simavr")], "accuracy").get("class")
    assert "best" in column(fast, "flash").get("class")
    assert text(column(accurate, "fits")) == "✗ no"
    assert text(column(fast, "fidelity")) == "cycle" and \
        column(fast, "fidelity").find("span").get("title").startswith("cycle-accurate:")
    assert len(uno) + 1 == len(table)               # + the native row, in its own table


def test_functional_latency_stays_out_with_its_reason(report):
    """qemu-system-avr's timer follows the host clock: the row stays, its latency cells are
    empty and say why; its host round trip does not make the row wall-clock."""
    path, _ = report
    html = path.read_text(encoding="utf-8")
    qemu = cells(parse(html), "uno")[("emlearn-trees", "qemu")]
    assert text(column(qemu, "fidelity")) == "func"
    latency = column(qemu, "latency median")
    assert text(latency) == "—†" and "not a device figure: functional" in latency.get("title")
    assert "700" not in "".join(text(td) for td in qemu.values())
    assert "† not a device figure: functional" in html
    assert "incomplete" in text(qemu["variant"])


def test_provenance_from_the_manifests(report, results):
    path, _ = report
    html = path.read_text(encoding="utf-8")
    for run_id in ("20261128-100000-aaaa", "20261128-110000-bbbb", "20261128-120000-cccc"):
        assert run_id in html
    manifest = __import__("json").loads((results / "20261128-100000-aaaa" / "manifest.json").read_text())
    assert manifest["harness_version"] in html and manifest["host"]["hostname"] in html
    if manifest["git"]:
        assert manifest["git"]["commit"] in html
    for tool, version in manifest["tools"].items():
        if version:
            assert __import__("html").escape(version) in html, tool
    assert "/cache/tinyhil-simavr" in html and "/dev/pts/7" in html     # the targets list
    assert "Incomplete runs" in html and "20261128-120000-cccc</code> did not finish" in html


def test_no_layer_chart_without_layer_records(tmp_path):
    make_run(tmp_path, "20261128-140000-eeee",
             figures("uno", "simavr", "cycle-accurate", "m2cgen", accuracy=96.7, latency=900.0))
    html = write_report([tmp_path], tmp_path / "out")["report.html"].read_text(encoding="utf-8")
    assert [img.get("alt") for img in parse(html).findall(".//img")] == ["uno: latency vs accuracy"]


def test_trend_page(tmp_path):
    for i, (run_id, latency) in enumerate((("20261128-100000-aaaa", 850.0),
                                           ("20261129-100000-bbbb", 990.0))):
        run = make_run(tmp_path / "results", run_id,
                       figures("uno", "simavr", "cycle-accurate", "emlearn-trees", accuracy=93.3,
                               latency=latency))
        update_manifest(run, started=f"2026-11-2{8 + i}T10:00:00+00:00")
    written = write_trend([tmp_path / "results"], tmp_path / "trend")
    doc = parse(written["trend.html"].read_text(encoding="utf-8"))
    assert len(doc.findall(".//img")) >= 3           # accuracy, agreement, latency median, p95
    changed = [tr for tr in doc.iter("tr") if "latency median" in "".join(tr.itertext())]
    assert changed and changed[0].get("class") == "worse"
    assert "850 µs" in "".join(changed[0].itertext()) and "+16.5 %" in "".join(changed[0].itertext())


def test_compare_html_highlights_the_breached_rule(tmp_path, capsys):
    base = make_run(tmp_path, "base", figures("uno", "simavr", "cycle-accurate", "rf",
                                              accuracy=90.0, latency=100.0))
    cur = make_run(tmp_path, "cur", figures("uno", "simavr", "cycle-accurate", "rf",
                                            accuracy=92.0, latency=110.0))
    out = tmp_path / "compare.html"
    assert main(["compare", str(base), str(cur), "--fail-on", "latency_us:+5%", "--html", str(out)]) == 1
    doc = parse(out.read_text(encoding="utf-8"))
    rows = {"".join(tr.find("td[4]").itertext()) + "/" + "".join(tr.find("td[5]").itertext()): tr
            for tr in doc.find(".//tbody").iter("tr")}
    assert rows["latency_us/median"].get("class") == "regression"
    assert "breaks latency_us:+5%" in "".join(rows["latency_us/median"].itertext())
    assert rows["accuracy/value"].get("class") == "improvement"
    assert rows["latency_us/p95"].get("class") == "worse"   # worse, but no rule covers p95
    assert "1 regression(s)" in "".join(doc.find(".//header").itertext())


# --- in a real browser -------------------------------------------------------------------------

def chromium(tmp_path, path, *args):
    """Headless Chromium on a file:// page, no network (every host name fails to resolve)."""
    profile = tempfile.mkdtemp(dir=tmp_path, prefix="chromium-profile-")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
               *args, path.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(tmp_path, path):
    """The DOM after the page's load event and scripts (virtual time lets them finish)."""
    return parse(chromium(tmp_path, path, "--virtual-time-budget=5000", "--dump-dom"))


def page_errors(doc) -> str:
    return "".join(doc.find(".//*[@id='page-errors']").itertext()).strip()


@needs_chromium
def test_report_renders_in_chromium_without_errors(report, tmp_path):
    path, table = report
    doc = dump_dom(tmp_path, path)
    assert doc.get("data-loaded") == "yes", "the page's load handler never ran"
    assert page_errors(doc) == ""
    rows = [tr for t in doc.iter("table") if "filterable" in (t.get("class") or "")
            for tr in t.find("tbody").iter("tr")]
    assert len(rows) == len(table)
    assert len(doc.findall(".//img")) == 4
    assert all(th.find("button") is not None for th in doc.find(".//table[@id='table-uno']").iter("th"))
    shot = tmp_path / "report.png"
    chromium(tmp_path, path, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@needs_chromium
def test_browser_check_catches_script_and_image_errors(tmp_path):
    """The error hook works: a failing script, console.error and an image that does not decode
    all land in #page-errors."""
    broken = tmp_path / "broken.html"
    broken.write_text(page("broken", "", '<img src="data:image/png;base64,AAAA" alt="bad plot">'
                                         "<script>console.error('boom'); noSuchFunction();</script>"),
                      encoding="utf-8")
    errors = page_errors(dump_dom(tmp_path, broken))
    assert "console.error: boom" in errors and "noSuchFunction" in errors and "bad plot" in errors


@needs_chromium
def test_sorting_and_filtering_in_chromium(report, tmp_path):
    path, _ = report
    driven = tmp_path / "driven.html"
    # Click the latency header twice (descending), then filter on "m2cgen", as a user would.
    script = """<script>window.addEventListener("load", function () {
      var th = Array.from(document.querySelectorAll("#table-uno th"))
                    .find(function (h) { return h.textContent.indexOf("latency median") === 0; });
      th.querySelector("button").click(); th.querySelector("button").click();
      var input = document.getElementById("filter");
      input.value = "m2cgen"; input.dispatchEvent(new Event("input"));
    });</script></body>"""
    driven.write_text(path.read_text(encoding="utf-8").replace("</body>", script), encoding="utf-8")
    doc = dump_dom(tmp_path, driven)
    assert page_errors(doc) == ""
    order = [text(tr.find("td[2]")).split()[0] for tr in doc.find(".//table[@id='table-uno']/tbody").iter("tr")]
    assert order[:3] == ["m2cgen", "forest", "emlearn-trees"]   # 15.5 ms, 2 ms, 850 µs; empty last
    shown_rows = [tr for t in doc.iter("table") if "filterable" in (t.get("class") or "")
                  for tr in t.find("tbody").iter("tr") if tr.get("hidden") is None]
    assert [text(tr.find("td[2]")) for tr in shown_rows] == ["m2cgen"]
    assert "1 of 5 rows" in "".join(doc.find(".//*[@id='filter-count']").itertext())

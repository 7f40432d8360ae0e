"""The lab's pages in a real browser (headless Chromium from Debian, driven by Selenium) on a
real ``accu-ingest run`` fed the real corpus: what a chemist, QA or IT would look at.

Screenshots of the pages go to ``tests/artifacts/web/`` (ACCU_WEB_ARTIFACTS overrides), kept by
CI as artefacts.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.corpus import IN_CI, REPO, corpus_dir
from support.workers import WorkerProcess, free_port, wait_for, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("ACCU_WEB_ARTIFACTS", REPO / "tests" / "artifacts" / "web"))
SCRIPT_NAME = "<script>alert(1)</script>"
REJECTED_NAME = "column-notes.txt"


def _openlab(sample: str) -> bytes:
    return (f"Sample Name:,{sample}\r\n"
            "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\r\n"
            "10.0,97.5,97.5,1.00,1.20,1.10\r\n"
            "0.3,2.5,2.5,2.00,2.20,2.10\r\n"
            "Sum,100.0,,,,\r\n").encode()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A worker that has taken the whole corpus, and a report whose sample is a script tag."""
    root = tmp_path_factory.mktemp("web")
    worker = WorkerProcess(root, "--config", str(write_config(root)))
    corpus = corpus_dir()
    for entry in corpus.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, worker.inbox / entry.name)
    (worker.inbox / "hostile").mkdir()
    (worker.inbox / "hostile" / "x_Report.csv").write_bytes(_openlab(SCRIPT_NAME))
    # Every corpus file is read now: a note left beside the exports is the rejected file.
    (worker.inbox / "loose").mkdir()
    (worker.inbox / "loose" / REJECTED_NAME).write_text("Column wash 2 h before the run.\n")
    worker.start()
    wait_for(lambda: not any(p.is_file() for p in worker.inbox.rglob("*"))
             and worker.status()["backlog"] == 0, timeout=120,
             what="every corpus file ingested or rejected, and out of the inbox")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if IN_CI:
            pytest.fail("chromium and chromedriver must be installed in CI (.ci/run)")
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install chromium "
                    "chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,1100"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def api(worker: WorkerProcess, path: str) -> Any:
    status, body = worker.get(path)
    assert status == 200, (path, body)
    return body


def test_overview_shows_the_counts_and_health(lab: WorkerProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    status = lab.status()
    browser.get(f"http://127.0.0.1:{lab.port}/")
    for state in ("ingested", "rejected", "queued"):
        cell = browser.find_element(By.CSS_SELECTOR, f'#counts td[data-state="{state}"]')
        assert int(cell.text.replace(",", "")) == status["files"][state]
    assert status["files"]["ingested"] > 10 and status["files"]["rejected"] > 0
    assert "every check passes" in browser.find_element(By.ID, "health").text
    newest = status["recent_rejections"][0]
    rows = browser.find_element(By.ID, "rejections").text
    assert f"accu-ingest retry {newest['id']}" in rows
    browser.save_screenshot(str(ARTIFACTS / "overview.png"))


def test_a_rejected_files_page_shows_its_reason_and_retry_command(
        lab: WorkerProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    rejected = api(lab, f"/api/files?state=rejected&name={REJECTED_NAME}")["items"]
    assert len(rejected) == 1, rejected
    row = rejected[0]
    browser.get(f"http://127.0.0.1:{lab.port}/files/{row['id']}")
    assert "unrecognised format" in browser.find_element(By.ID, "reason").text
    retry = browser.find_element(By.ID, "retry").text
    assert retry == f'accu-ingest retry {row["id"]} --reason "…"'
    # its audit trail, in order, each event checked against the chain
    seqs = [int(tr.find_elements(By.TAG_NAME, "td")[0].text)
            for tr in browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")]
    assert seqs == sorted(seqs) and len(seqs) >= 5
    assert "hash checks" in browser.find_element(By.ID, "chain").text
    _follow(browser, lambda: browser.find_element(By.ID, "rehash-link").click())
    assert "hash to the ledger's SHA-256" in browser.find_element(By.ID, "rehash").text
    browser.save_screenshot(str(ARTIFACTS / "file.png"))


def _follow(browser: Any, act: Callable[[], None]) -> None:
    """``act`` (a click that loads a page), then wait until the new page has replaced the old:
    elements found sooner may be the old page's."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(old))


def test_an_injection_draws_its_chromatogram_with_the_main_peak_marked(
        lab: WorkerProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    found = api(lab, "/api/files?name=new-shim-1.txt")["items"]
    story = api(lab, f"/api/files/{found[0]['id']}")
    injection = story["injections"][0]["id"]
    data = api(lab, f"/api/injections/{injection}")
    main = [p for p in data["peaks"][data["purity_signal"]] if p["main"]]
    assert len(main) == 1
    browser.get(f"http://127.0.0.1:{lab.port}/injections/{injection}")
    svg = browser.find_element(By.ID, "chromatogram")
    lines = svg.find_elements(By.CSS_SELECTOR, "polyline.signal")
    assert [line.get_attribute("data-signal") for line in lines] == ["Detector A"]
    assert len(lines[0].get_attribute("points").split()) > 1000  # the trace is drawn
    marker = svg.find_element(By.ID, "main-peak")
    assert float(marker.get_attribute("data-rt")) == main[0]["rt_min"]
    assert marker.is_displayed() and "main peak" in marker.text
    shaded = svg.find_elements(By.CSS_SELECTOR, "polygon.peak")
    assert len(shaded) >= len(data["peaks"][data["purity_signal"]]) - 2
    assert len(svg.find_elements(By.CSS_SELECTOR, "polygon.peak.main")) == 1
    drawn, stored = (int(svg.get_attribute(a)) for a in ("data-points-drawn",
                                                          "data-points-stored"))
    assert drawn <= 2 * 872 and stored > drawn  # min/max per pixel column, for display only
    browser.save_screenshot(str(ARTIFACTS / "injection.png"))

    # several signals overlaid, chosen with the form (no script on the page)
    for box in browser.find_elements(By.CSS_SELECTOR, 'input[name="signal"]'):
        if box.get_attribute("value") == "Detector B" and not box.is_selected():
            box.click()
    _follow(browser, lambda: browser.find_element(By.CSS_SELECTOR, "form.filters button").click())
    signals = {line.get_attribute("data-signal") for line in browser.find_elements(
        By.CSS_SELECTOR, "#chromatogram polyline.signal")}
    assert signals == {"Detector A", "Detector B"}

    # zoom to the main peak: the window narrows around it, the marker stays
    _follow(browser, lambda: browser.find_element(By.CSS_SELECTOR, "tr.main a.zoom").click())
    svg = browser.find_element(By.ID, "chromatogram")
    lo, hi = float(svg.get_attribute("data-from")), float(svg.get_attribute("data-to"))
    assert lo < main[0]["rt_min"] < hi and hi - lo < 8  # of a 20-minute run
    assert svg.find_element(By.ID, "main-peak").is_displayed()


def test_a_sample_named_like_a_script_is_shown_as_text_and_runs_nothing(
        lab: WorkerProcess, browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    found = api(lab, "/api/files?name=hostile/x_Report.csv")["items"]
    story = api(lab, f"/api/files/{found[0]['id']}")
    assert story["file"]["state"] == "ingested"
    inj = story["injections"][0]
    for path in (f"/samples/{inj['sample_id']}", f"/injections/{inj['id']}",
                 f"/files/{found[0]['id']}"):
        browser.get(f"http://127.0.0.1:{lab.port}{path}")
        if path != f"/files/{found[0]['id']}":
            assert browser.find_element(By.ID, "sample-name").text == SCRIPT_NAME
        else:
            assert SCRIPT_NAME in browser.find_element(By.ID, "injections").text
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        assert browser.find_elements(By.TAG_NAME, "script") == []
    with urllib.request.urlopen(f"http://127.0.0.1:{lab.port}/samples/{inj['sample_id']}",
                                timeout=5) as r:
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.read().decode()


def test_every_method_but_get_and_head_is_405(lab: WorkerProcess) -> None:
    for path in ("/", "/files/1", "/api/files", "/audit/verify"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            request = urllib.request.Request(f"http://127.0.0.1:{lab.port}{path}", data=b"{}",
                                             method=method)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(request, timeout=5)
            assert err.value.code == 405


def test_api_pages_with_stable_cursors(lab: WorkerProcess) -> None:
    first = api(lab, "/api/files?limit=7")
    second = api(lab, f"/api/files?limit=7&cursor={first['next_cursor']}")
    ids = [f["id"] for f in first["items"] + second["items"]]
    assert len(ids) == 14 and ids == sorted(ids, reverse=True)
    again = api(lab, f"/api/files?limit=7&cursor={first['next_cursor']}")
    assert again == second
    status, body = lab.get("/api/files?since=yesterday")
    assert status == 400 and "expected a UTC date" in body["error"]
    events = api(lab, f"/api/audit?file={ids[0]}&limit=500")["items"]
    assert events and {e["file_id"] for e in events} == {ids[0]}
    verdict = api(lab, "/api/audit/verify")
    assert verdict["ok"] and verdict["events"] > 100


def test_the_files_page_and_api_list_the_same_files_and_the_page_every_format(
        lab: WorkerProcess) -> None:
    listed = api(lab, "/api/files?limit=500")
    assert set(listed) == {"items", "next_cursor"} and listed["next_cursor"] is None
    formats = {f["format"] for f in listed["items"] if f["format"]}
    assert len(formats) > 1
    with urllib.request.urlopen(f"http://127.0.0.1:{lab.port}/files?limit=500", timeout=5) as r:
        page = r.read().decode()
    menu = re.search(r'<select name="format">(.*?)</select>', page, re.S)
    assert menu is not None
    assert set(re.findall(r"<option[^>]*>([^<]+)</option>", menu.group(1))) == {"any", *formats}
    shown = [int(i) for i in re.findall(r'<tr class="file"><td><a href="/files/(\d+)">', page)]
    assert shown == [f["id"] for f in listed["items"]]


def test_a_bind_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path)),
                           "--host", "0.0.0.0", "--consumer-processes", "0")
    cmd = [sys.executable, "-m", "worker", "run", "--inbox", str(worker.inbox), "--data-dir",
           str(worker.data), "--port", str(free_port()), *worker.extra]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items()
                                  if k != "ACCU_INGEST_WEB_TOKEN"})
    assert refused.returncode == 2
    assert "without an access token: set web_token" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1

    token = "a-token-of-sixteen-or-more"
    port = free_port()
    with open(worker.log, "ab") as log:
        proc = subprocess.Popen([*cmd[:-len(worker.extra) - 2], "--port", str(port),
                                 *worker.extra], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "ACCU_INGEST_WEB_TOKEN": token})
    base = f"http://127.0.0.1:{port}"

    def answer(path: str, headers: dict[str, str] | None = None) -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(base + path,
                                                               headers=headers or {}),
                                        timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    try:
        wait_for(lambda: answer("/livez") == 200, timeout=30, what="worker /livez")
        assert answer("/api/files") == 401 and answer("/status") == 401
        assert answer("/api/files", {"Authorization": "Bearer wrong-token-wrong-token"}) == 401
        assert answer("/api/files", {"Authorization": f"Bearer {token}"}) == 200
        basic = base64.b64encode(f"lab:{token}".encode()).decode()
        assert answer("/", {"Authorization": f"Basic {basic}"}) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_show_tells_one_files_story_on_the_command_line(lab: WorkerProcess) -> None:
    rejected = api(lab, f"/api/files?state=rejected&name={REJECTED_NAME}")["items"][0]
    shown = lab.cli("show", REJECTED_NAME, "--rehash")
    assert shown.returncode == 0, shown.stderr
    assert "REJECTED   unrecognised format" in shown.stdout
    assert f'retry      accu-ingest retry {rejected["id"]} --reason "…"' in shown.stdout
    assert "re-hashed  ok" in shown.stdout and "its hash checks" in shown.stdout
    by_sha = lab.cli("show", rejected["sha256"][:12], "--json")
    assert json.loads(by_sha.stdout)["file"]["id"] == rejected["id"]
    missing = lab.cli("show", "no-such-file.csv")
    assert missing.returncode == 1 and "no file with id" in missing.stderr

    jobs = lab.cli("jobs", "--json")
    names = {j["name"] for j in json.loads(jobs.stdout)}
    assert {"agilent-1290", "shimadzu-labsolutions"} <= names
    one = lab.cli("results", "--job", "agilent-1290", "--json")
    rows = json.loads(one.stdout)
    assert rows and {r["job"] for r in rows} == {"agilent-1290"}
    limited = lab.cli("results", "--limit", "3", "--json")
    assert len(json.loads(limited.stdout)) == 3 and "--limit 0 shows all" in limited.stderr
    bad = lab.cli("results", "--since", "last week")
    assert bad.returncode == 2 and "expected a UTC date" in bad.stderr


def test_a_duplicate_copy_is_shown_on_its_originals_page_and_in_status(
        lab: WorkerProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    before = lab.status()["duplicates"]
    original = api(lab, "/api/files?name=new-shim-1.txt&state=ingested")["items"][0]
    copy = lab.inbox / "again" / "copy-of-shim.txt"
    copy.parent.mkdir()
    copy.write_bytes((corpus_dir() / "shimadzu-labsolutions" / "new-shim-1.txt").read_bytes())
    wait_for(lambda: lab.status()["duplicates"] == before + 1, timeout=30,
             what="the copy counted as a duplicate")
    browser.get(f"http://127.0.0.1:{lab.port}/files/{original['id']}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#duplicates tr.duplicate")
    assert any("again/copy-of-shim.txt" in r.text for r in rows)
    status = lab.cli("status")
    assert f"duplicate: {before + 1}" in status.stdout
    shown = lab.cli("show", str(original["id"]))
    assert "again/copy-of-shim.txt  (this file was ingested)" in shown.stdout
    listed = api(lab, "/api/files?state=duplicate&name=copy-of-shim")["items"]
    assert [d["id"] for d in listed] == [original["id"]]


@pytest.mark.scaleout
def test_the_pages_read_the_same_on_postgresql(tmp_path: Path, pg: str) -> None:
    """Every page and API list on a PostgreSQL ledger (scale-out), duplicates and all."""
    from support.pipeline import Pipeline

    from worker.runtime.canary import report_bytes
    from worker.runtime.health import Probe
    from worker.web.app import App

    p = Pipeline.open(tmp_path, database_url=pg)
    try:
        row = p.run("J/a_Report.csv", report_bytes("a"))
        bad = p.run("J/b_Report.csv", "garbage\n")
        p.run("J/c_Report.csv", report_bytes("a"))  # a copy of a
        app = App(Probe(settings=p.settings, role="cli"))
        for target in ("/", "/files", f"/files/{row.id}", "/jobs", f"/jobs/{row.job_id}",
                       "/audit?kind=ingested", "/api/audit/verify"):
            assert app(target).status == 200, target
        rejected = json.loads(app("/api/files?state=rejected&name=b_").body)["items"]
        assert [f["id"] for f in rejected] == [bad.id]
        story = json.loads(app(f"/api/files/{row.id}").body)
        assert [d["path"] for d in story["duplicates"]] == ["J/c_Report.csv"]
        assert story["chain_ok"] and story["results"]
        assert json.loads(app("/api/overview").body)["files"]["duplicate"] == 1
    finally:
        p.close()

"""The student lab in a real browser: headless Chromium and chromedriver from
the system packages (Debian `chromium`, `chromium-driver`) through Selenium,
which is pointed at both, so nothing is downloaded.

The page is served from lab/ on 127.0.0.1 (lab/builder.py, as `make lab`
does) and runs the unchanged firmware and the emulator's models in the pinned
MicroPython WebAssembly build (lab/node_modules, from `npm ci`). The tests:
  - run a preset to the end at full speed and check that the page's delivered
    total, its alarms and the patient model's flags equal `pump-emu`'s
    report.json for the same scenario (CPython), and that its checks hold;
  - press a fault button (kink) and check the occlusion alarm appears on the
    page in words and shape, at the same time as in the CPython lab engine;
  - send programs from the editor and check the pump's refusal and read-back
    are shown verbatim;
  - use the page by keyboard alone.
Screenshots go to out/lab-test/. Without Chromium, chromedriver, Selenium or
npm the tests are skipped with the reason (make test says so too); .ci/run
installs Chromium first, so CI always runs them.
"""
import json
import os
import time

import pytest

from emulator import report as R
from emulator import scenario as S
from emulator.engine import World, load_profile
from emulator.lab import Lab
from emulator.mpwasm import npm_ci
from lab import builder as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = os.path.join(ROOT, "out", "lab-test")
MISSING = L.browser_missing()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(MISSING is not None, reason="lab browser tests skipped: %s" % MISSING)]


@pytest.fixture(scope="module")
def site():
    npm_ci()
    L.build()
    os.makedirs(SHOTS, exist_ok=True)
    with L.Site() as url:
        yield url


@pytest.fixture(scope="module")
def browser(site):
    d = L.start_browser()
    yield d
    d.quit()


def open_lab(browser, site, query):
    browser.get(site + "?" + query)
    L.wait_ready(browser)


def shot(browser, name):
    path = os.path.join(SHOTS, name + ".png")
    browser.save_screenshot(path)
    return path


def js(browser, code, *args):
    return browser.execute_script(code, *args)


def wait_for(browser, code, timeout=120, errors_fail=True):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = js(browser, code)
        if v:
            return v
        if errors_fail:
            err = js(browser, "return window.labApp.error")
            assert not err, err
        time.sleep(0.05)
    raise AssertionError("timed out waiting for: " + code)


def page_errors(browser):
    return [e["message"] for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and "favicon" not in e["message"]]


def click(browser, ident):
    browser.find_element("id", ident).click()


def lamp(browser):
    return js(browser, r"const l = document.getElementById('lamp');"
                       r"return [l.className, l.querySelector('.shape').textContent, l.textContent.replace(/\s+/g, ' ').trim()];")


# ---------------------------------------------------------------- a preset to the end
def test_preset_run_to_the_end_equals_the_cpython_emulator(browser, site):
    name = "catheter-kink"
    open_lab(browser, site, "scenario=" + name)
    shot(browser, name + "-start")
    t0 = time.monotonic()
    click(browser, "btn-end")
    wait_for(browser, "return !!window.labApp.result")
    wall = time.monotonic() - t0
    shot(browser, name + "-end")
    page = {
        "delivered_nl": int(browser.find_element("id", "delivered-nl").text),
        "alarms": js(browser, """return Array.from(document.querySelectorAll('#alarm-summary tbody tr')).map(
            (tr) => [tr.dataset.alarm, Number(tr.dataset.firstMs), Number(tr.dataset.raised), JSON.parse(tr.dataset.cleared),
                     tr.cells[1].textContent])"""),
        "flags": js(browser, """return Array.from(document.querySelectorAll('#flags li[data-flag]')).map(
            (li) => [li.dataset.flag, Number(li.dataset.tMs)])"""),
        "final": browser.find_element("id", "final-list").text,
    }
    w = World(S.load(S.find(name)))
    w.run()
    rep = R.build(w)
    assert page["delivered_nl"] == rep["totals"]["delivered_nl"]
    assert [a[:4] for a in page["alarms"]] == [[a["alarm"], a["first_raised_ms"], a["raised"], a["cleared_ms"]]
                                               for a in rep["alarms"]]
    assert page["alarms"][0][4] == "▲ critical"
    assert page["flags"] == [[f["flag"], f["t_ms"]] for f in rep["patient"]["flags"]]
    result = js(browser, "return window.labApp.result")
    assert result["delivered_strokes"] == rep["totals"]["delivered_strokes"]
    assert result["final_state"] == rep["final_state"]
    assert [(c["id"], c["ok"]) for c in result["checks"]] == [(c["id"], c["ok"]) for c in rep["invariants"]]
    assert not [c for c in result["checks"] if c["status"] == "fail"]
    assert all(e["status"] == "ok" for e in result["expectations"])
    for c in rep["invariants"]:
        assert ("✓ %s " if c["status"] == "ok" else "– %s ") % c["id"] in page["final"]
    assert page_errors(browser) == []
    print("\n%s to the end in the browser: %.1f s (page's own timer %.1f s)"
          % (name, wall, js(browser, "return window.labApp.lastRunMs") / 1000))


# ---------------------------------------------------------------- a fault button
def test_kink_button_raises_the_occlusion_alarm_on_the_page(browser, site):
    name = "routine-refill"
    open_lab(browser, site, "scenario=" + name)
    assert lamp(browser)[0] == "lamp ok" and lamp(browser)[2] == "■ No alarm"
    click(browser, "act-kink")           # severity 100 %: a full kink
    assert "kink" in browser.find_element("id", "act-result").text
    for _ in range(20):
        click(browser, "btn-next")
        wait_for(browser, "return !window.labApp.busy")
        if "occlusion" in lamp(browser)[2]:
            break
    cls, shape, text = lamp(browser)
    assert "critical" in cls and shape == "▲"
    assert text.startswith("▲") and "CRITICAL ALARM: occlusion" in text and "(two-tone)" in text
    active = browser.find_element("id", "active-alarms").text
    assert "occlusion — critical, two-tone" in active
    assert browser.find_element("id", "f-state").text == "occluded"
    first = js(browser, "return Number(document.querySelector('#alarm-summary tr[data-alarm=occlusion]').dataset.firstMs)")
    shot(browser, name + "-kink-occlusion")
    # the same presses in the CPython lab engine: the alarm at the same millisecond
    lab = Lab(json.loads(json.dumps(S.to_plain(S.load(S.find(name))))), load_profile("sim"))
    lab.act("kink", json.dumps({"severity_pct": 100}))
    while not any(a["alarm"] == "occlusion" for a in json.loads(lab.view())["active"]):
        while json.loads(lab.next_event())["more"]:
            pass
    assert [a["first_raised_ms"] for a in json.loads(lab.view())["alarms"] if a["alarm"] == "occlusion"] == [first]
    # the clinic silences it: the pump's own answer comes back
    click(browser, "act-silence")
    assert browser.find_element("id", "act-result").text.endswith("silence: ok")
    click(browser, "act-release")
    for _ in range(10):
        click(browser, "btn-next")
        wait_for(browser, "return !window.labApp.busy")
        if lamp(browser)[0] == "lamp alert":
            break
    # the cause is gone; the latched alarm stays, at the single tone, until a clinician acknowledges it
    assert lamp(browser)[2] == "● ALERT: occlusion (acknowledge it) (single tone)"
    assert "occlusion — cause gone, single tone until acknowledged" in browser.find_element("id", "active-alarms").text
    browser.execute_script("document.getElementById('ack-alarm').value = 'occlusion'")
    click(browser, "act-acknowledge")
    assert browser.find_element("id", "act-result").text.endswith("acknowledge: ok")
    wait_for(browser, "return !window.labApp.busy")
    assert lamp(browser)[2] == "■ No alarm"
    rows = browser.find_element("id", "events").text
    assert "alarm_clear occlusion" in rows and "world repair release" in rows
    assert page_errors(browser) == []


# ---------------------------------------------------------------- the program editor
def _fill_program(browser, daily, maxd, maxh):
    for ident, v in (("p-daily", daily), ("p-maxd", maxd), ("p-maxh", maxh)):
        el = browser.find_element("id", ident)
        el.clear()
        el.send_keys(str(v))


def _readback_table(browser):
    return js(browser, """return Array.from(document.querySelectorAll('#p-readback tbody tr')).map(
        (tr) => Array.from(tr.cells).map((c) => c.textContent))""")


def test_program_editor_reads_back_then_confirms_like_the_link(browser, site):
    name = "catheter-kink"
    open_lab(browser, site, "scenario=" + name)
    lab = Lab(json.loads(json.dumps(S.to_plain(S.load(S.find(name))))), load_profile("sim"))
    prog = {"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 900, "max_daily_ug": 1200,
            "max_hourly_ug": 60}
    want = json.loads(lab.check_program(json.dumps({"program": prog})))
    assert not want["ok"]
    # a refusal: the pump's words, unchanged; nothing to confirm
    _fill_program(browser, 900, 1200, 60)
    click(browser, "p-send")
    assert browser.find_element("id", "p-result").text == "Not accepted. The pump said:\n" + want["text"]
    assert not browser.find_element("id", "p-confirm").is_displayed()
    # a good program: read back in µg and nL beside what was typed, not yet in force
    _fill_program(browser, 600, 800, 50)
    click(browser, "p-send")
    assert browser.find_element("id", "p-result").text.startswith("Read back by the pump, not in force yet")
    rows = {r[0].strip(): r[1:] for r in _readback_table(browser)}
    assert rows["daily dose"] == ["600 µg/day", "600 µg/day", "1200000 nL/day"]
    assert rows["cap in any 24 h"] == ["800 µg", "800 µg", "1600000 nL"]
    assert rows["cap in any hour"] == ["50 µg", "50 µg", "100000 nL"]
    assert browser.find_element("id", "p-confirm").is_displayed()
    assert "500 µg/day" in browser.find_element("id", "f-mode").text           # still the old program
    shot(browser, name + "-program-readback")
    click(browser, "p-confirm")
    assert browser.find_element("id", "p-result").text == "Confirmed: the program is in force now."
    assert "continuous, 600 µg/day" in browser.find_element("id", "f-mode").text
    assert not browser.find_element("id", "p-confirm").is_displayed()
    # cancel: the read-back goes, the program in force stays
    _fill_program(browser, 620, 800, 50)          # (+24 % on the 500 µg/day of the last 24 h)
    click(browser, "p-send")
    assert browser.find_element("id", "p-cancel").is_displayed()
    click(browser, "p-cancel")
    assert browser.find_element("id", "p-result").text == "Cancelled: the pump keeps the program in force."
    assert "continuous, 600 µg/day" in browser.find_element("id", "f-mode").text
    rows = browser.find_element("id", "events").text
    assert "clinic command program_check ok" in rows and "clinic command program ok" in rows
    assert page_errors(browser) == []


# ---------------------------------------------------------------- plots, status, presets
def test_ticks_are_round_and_the_status_line_follows_the_run(browser, site):
    open_lab(browser, site, "scenario=catheter-kink&days=3")
    assert browser.find_element("id", "boot").text.startswith("Ready: catheter-kink")
    click(browser, "btn-3600x")
    wait_for(browser, "return document.getElementById('boot').textContent.startsWith('Running at 3600')", 10)
    time.sleep(0.5)
    click(browser, "btn-pause")
    assert browser.find_element("id", "boot").text.startswith("Paused at ")
    click(browser, "btn-end")
    wait_for(browser, "return !!window.labApp.result && !window.labApp.busy")
    assert browser.find_element("id", "boot").text.startswith("Finished: catheter-kink")
    # the block is shaded from the fault to its release (2d 10:00 to 2d 16:00), the clinic's acts too
    spans = js(browser, "return window.labApp.spans")
    assert [s[:4] for s in spans if s[3] == "fault"] == [[58 * 3600_000, 64 * 3600_000, "block", "fault"]]
    assert any(s[2] == "program" and s[3] == "clinic" for s in spans), spans
    ticks = js(browser, "return window.labApp.ticks")
    for plot in ("delivery", "patient"):
        t = ticks[plot]
        assert t["clipped"] == 0 and t["x"] == ["0d", "1d", "2d", "3d"], t
        steps = [float(y) for y in t["y"]]
        step = steps[1] - steps[0]
        # 1, 2 or 5 times a power of ten, every label a whole multiple of it
        mant = step / 10 ** __import__("math").floor(__import__("math").log10(step))
        assert round(mant, 6) in (1.0, 2.0, 5.0), t
        assert all(abs(v / step - round(v / step)) < 1e-6 for v in steps), t
    shot(browser, "catheter-kink-ticks")


def test_dose_plot_shows_the_wrong_strength_the_volume_hides(browser, site):
    # catheter-kink's pump (500 µg/day of 500 µg/mL), refilled at once with 2000 µg/mL drug
    # it is told is 500 µg/mL (the page's button), run for a day
    open_lab(browser, site, "scenario=catheter-kink&days=1")
    click(browser, "act-refill-wrong")
    assert "refill: ok" in browser.find_element("id", "act-result").text
    click(browser, "btn-end")
    wait_for(browser, "return !!window.labApp.result && !window.labApp.busy")
    rates = js(browser, "return window.labApp.doseRates")
    day = 86400_000
    later = [r[1] for r in rates if 0.5 * day <= r[0] <= day]    # the catheter's old drug is through by then
    assert later and all(1800 <= x <= 2200 for x in later), later  # four times the program
    assert {r[2] for r in rates} == {500}                          # the program never changed
    assert "against the programmed 500 µg/day" in browser.find_element("id", "cap-dose").text
    assert js(browser, "return window.labApp.ticks.dose.clipped") == 0
    shot(browser, "catheter-kink-wrong-strength-dose")


def test_sixty_days_label_is_on_the_canvas(browser, site):
    open_lab(browser, site, "scenario=implant-titration&days=60")
    wait_for(browser, "return window.labApp.ticks && window.labApp.ticks.delivery", 30)
    t = js(browser, "return window.labApp.ticks.delivery")
    assert t["x"][-1] == "60d" and t["clipped"] == 0, t


def test_autoplay_starts_the_run_by_itself(browser, site):
    open_lab(browser, site, "scenario=catheter-kink&autoplay=3600")
    assert browser.find_element("id", "btn-3600x").get_attribute("aria-pressed") == "true"
    wait_for(browser, "return window.labApp.view.t_ms > 600000", 30)
    click(browser, "btn-pause")
    open_lab(browser, site, "scenario=catheter-kink&days=1&autoplay=end")
    wait_for(browser, "return !!window.labApp.result")
    assert browser.find_element("id", "boot").text.startswith("Finished: catheter-kink")
    open_lab(browser, site, "scenario=catheter-kink&autoplay=fast")
    assert "?autoplay=fast is not a speed" in browser.find_element("id", "boot").text
    assert js(browser, "return window.labApp.speed") == 0


# ---------------------------------------------------------------- keyboard
def test_the_lab_is_usable_by_keyboard(browser, site):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    open_lab(browser, site, "scenario=catheter-kink")
    js(browser, "document.activeElement.blur(); document.body.focus();")
    seen = []
    for _ in range(30):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        seen.append(js(browser, "return document.activeElement.id || document.activeElement.textContent.trim()"))
    for ident in ("preset", "btn-pause", "btn-1x", "btn-60x", "btn-3600x", "btn-next", "btn-end"):
        assert ident in seen, (ident, seen)
    # keys on the page (not in a field): 3 runs at 3600x, space pauses
    js(browser, "document.activeElement.blur();")
    t0 = js(browser, "return window.labApp.view.t_ms")
    ActionChains(browser).send_keys("3").perform()
    assert browser.find_element("id", "btn-3600x").get_attribute("aria-pressed") == "true"
    time.sleep(1.0)
    ActionChains(browser).send_keys(Keys.SPACE).perform()
    assert browser.find_element("id", "btn-pause").get_attribute("aria-pressed") == "true"
    t1 = js(browser, "return window.labApp.view.t_ms")
    assert t1 - t0 >= 600_000, "an hour a second for a second should pass well over 10 min"
    # a button reached by Tab works with Enter: Next event (the block at 2d 10:00)
    browser.find_element("id", "btn-next").send_keys(Keys.ENTER)
    wait_for(browser, "return !window.labApp.busy && window.labApp.view.t_ms === %d" % (58 * 3600_000), 30)
    assert "world fault block" in browser.find_element("id", "events").text
    # the alarm lamp tells its state in words (role=status), not only by colour
    assert browser.find_element("id", "lamp").get_attribute("role") == "status"
    shot(browser, "catheter-kink-keyboard")


def test_an_unknown_preset_is_named_on_the_page(browser, site):
    browser.get(site + "?scenario=no-such-preset")
    wait_for(browser, "return window.labApp && window.labApp.error", 30, errors_fail=False)
    assert 'no preset called "no-such-preset"' in browser.find_element("id", "boot").text
    # the list does not pretend a preset is loaded, and every preset can be chosen from it
    sel = browser.find_element("id", "preset")
    assert js(browser, "return document.getElementById('preset').value") == ""
    assert sel.find_elements("css selector", "option")[0].text == "— choose a preset —"
    from selenium.webdriver.support.ui import Select
    Select(sel).select_by_value("catheter-kink")
    wait_for(browser, "return location.search.includes('scenario=catheter-kink')", 30, errors_fail=False)
    L.wait_ready(browser)
    assert "scenario=catheter-kink" in browser.current_url
    assert browser.find_element("id", "boot").text.startswith("Ready: catheter-kink")

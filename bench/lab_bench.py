"""The student lab's speed in a browser (headless Chromium from the system).

Prints, for the page running the firmware and the models in MicroPython
WebAssembly:
  - a 30-day preset run to the end at full speed ("Run to the end"): the
    library's routine-refill cut to 30 days (200 ug/day at 2000 ug/mL, 400
    strokes a day), target under 10 s; and, heavier, implant-titration cut to
    30 days (1200 to 2000 strokes a day after its priming bolus);
  - frames per second while the page runs at 3600x (an hour a second), drawing
    every frame;
  - the time to load the page (MicroPython, firmware and models).
Figures only: nothing here passes or fails. Without Chromium it says why.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emulator import mpwasm  # noqa: E402
from lab import builder as L  # noqa: E402


def run_to_end(driver, url, query):
    t0 = time.monotonic()
    driver.get(url + "?" + query)
    L.wait_ready(driver)
    load = time.monotonic() - t0
    driver.find_element("id", "btn-end").click()
    t1 = time.monotonic()
    while not driver.execute_script("return !!window.labApp.result || !!window.labApp.error"):
        time.sleep(0.02)
    wall = time.monotonic() - t1
    r = driver.execute_script("return [window.labApp.lastRunMs, window.labApp.result.delivered_strokes,"
                              " window.labApp.result.t_ms, window.labApp.error]")
    if r[3]:
        raise L.LabError(r[3])
    return load, wall, r[0] / 1000.0, r[1], r[2]


def fps_at(driver, url, query, speed_button="btn-3600x", seconds=5.0):
    driver.get(url + "?" + query)
    L.wait_ready(driver)
    driver.find_element("id", speed_button).click()
    time.sleep(1.0)   # settle
    f0, t0 = driver.execute_script("return [window.labApp.framesTotal, window.labApp.view.t_ms]")
    start = time.monotonic()
    time.sleep(seconds)
    f1, t1 = driver.execute_script("return [window.labApp.framesTotal, window.labApp.view.t_ms]")
    el = time.monotonic() - start
    driver.find_element("id", "btn-pause").click()
    return (f1 - f0) / el, (t1 - t0) / 1000.0 / el


def main():
    why = L.browser_missing()
    if why:
        print("lab bench skipped: %s" % why)
        return 0
    mpwasm.npm_ci()
    L.build()
    driver = L.start_browser()
    try:
        with L.Site() as url:
            print("student lab (MicroPython %s WebAssembly in headless Chromium):" % mpwasm.pinned_version())
            for label, query in (("routine-refill, 30 days", "scenario=routine-refill&days=30"),
                                 ("implant-titration, 30 days", "scenario=implant-titration&days=30")):
                load, wall, page_s, strokes, t_ms = run_to_end(driver, url, query)
                print("  %-28s run to the end %5.1f s (page timer %.1f s), %d strokes, %.0fx real time; "
                      "page load %.1f s" % (label, wall, page_s, strokes, t_ms / 1000 / max(page_s, 1e-3), load))
            fps, rate = fps_at(driver, url, "scenario=routine-refill")
            print("  3600x on routine-refill        %5.1f frames per second (a step and a redraw each); "
                  "virtual time %.0fx real" % (fps, rate))
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())

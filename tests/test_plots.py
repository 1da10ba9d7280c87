"""The run's plots tell its story: one page (story.png) with the delivery in
µg/day (a wrong concentration shows as 4x, though the volume looks right), the
faults and clinic acts shaded, a caption in plain words; every axis with its
unit (µL, µg, never "uL"); every legend beside its axes, not over the data.

One small scenario (2 days: a 6 h catheter block, then a refill of 2000 µg/mL
drug where the pump expects 500) is run once for the module.
"""
import os

import pytest

from emulator import plots as P
from emulator import report as R
from emulator.engine import World
from emulator.scenario import load

SCENARIO = """\
title = "plots: a block, then a refill of the wrong strength"
description = "for tests/test_plots.py"
duration = "2d"

[start]
fill_ml = 10
concentration_ug_ml = 500

[start.program]
mode = "continuous"
concentration_ug_ml = 500
daily_dose_ug = 400
max_daily_ug = 500
max_hourly_ug = 30

[[events]]
at = "0d 10:00"
do = "block"

[[events]]
at = "0d 16:00"
do = "release"

[[events]]
at = "1d 00:00"
do = "refill"
volume_ml = 20
concentration_ug_ml = 500
actual_concentration_ug_ml = 2000
"""
HOUR = 3600000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("plots")
    path = d / "plots-story.toml"
    path.write_text(SCENARIO)
    w = World(load(str(path)))
    try:
        w.run()
        rep = R.build(w)
    finally:
        w.close()
    return w, rep, d


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions draw, kept open to be looked at."""
    kept = []
    close = P.plt.close
    monkeypatch.setattr(P.plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    close("all")


def test_block_and_clinic_acts_are_spans(run):
    w, rep, _ = run
    spans = P.event_spans(w, w.sc.duration_ms)
    block = [s for s in spans if s[2] == "block"]
    assert block == [(10 * HOUR, 16 * HOUR, "block", "fault")]          # from the block to its release
    assert not [s for s in spans if s[2] == "release"]                  # the release ends it, no span of its own
    refill = [s for s in spans if s[2] == "refill" and s[0] == 24 * HOUR]
    assert len(refill) == 1 and refill[0][3] == "clinic" and refill[0][1] > refill[0][0]


def test_delivery_in_ug_per_day_shows_the_wrong_strength_the_volume_hides(run):
    w, rep, _ = run
    t, ug = P.delivery_ug_day(w, w.sc.duration_ms)
    rate = dict(zip(t, ug))
    assert 380 <= rate[5 * HOUR] <= 420                 # 400 µg/day before anything happens
    assert rate[12 * HOUR] == 0                         # blocked: nothing moves
    assert 1520 <= rate[36 * HOUR] <= 1680              # 4x: 2000 µg/mL drug at the pump's 500 µg/mL rate
    tp, vp = P.programmed_ug_day(w, w.sc.duration_ms)
    assert set(vp[1:]) == {400.0}                       # the program never changed


def test_caption_says_what_happened(run):
    w, rep, _ = run
    text = P.caption(w, rep)
    assert text.startswith("plots-story over 2.0 days: the pump moved ")
    assert "occlusion (critical)" in text and "possible overdose" in text
    assert "Grey shading: faults" in text


def test_story_page_has_units_and_legends_beside_the_axes(run, figures):
    w, rep, d = run
    path = P.story(w, rep, str(d))
    assert os.path.getsize(path) > 50000
    fig = figures[-1]
    w_in, h_in = fig.get_size_inches()
    assert h_in > w_in                                  # one tall page
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    main = [ax for ax in fig.axes if ax.get_ylabel()]
    labels = [ax.get_ylabel() for ax in main]
    for want in ("dose (µg/day)", "volume (mL)", "reservoir (mL)", "battery (%)", "level (ng/mL)"):
        assert want in labels, labels
    shaded = 0
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            assert leg.get_window_extent(r).x0 >= ax.get_window_extent(r).x1 - 1, ax.get_ylabel()
        shaded += sum(1 for p in ax.patches if p.get_alpha() in (0.18, 0.1))
    # the block is shaded on each of the five panels (axvspan adds a patch)
    assert shaded >= 5 * 2
    texts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    assert any(t.startswith("block") for t in texts)
    assert not any("uL" in t or " ug" in t for t in texts), [t for t in texts if "uL" in t or " ug" in t]


def test_every_plot_uses_micro_units_and_keeps_its_legend_off_the_data(run, figures):
    w, rep, d = run
    for f in (P.delivery, P.reservoir_battery, P.patient):
        f(w, rep, str(d))
    for fig in figures:
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        for ax in fig.axes:
            assert "uL" not in ax.get_ylabel()
            leg = ax.get_legend()
            if leg is not None:
                assert leg.get_window_extent(r).x0 >= ax.get_window_extent(r).x1 - 1, ax.get_ylabel()
    assert "cumulative volume (µL)" in [ax.get_ylabel() for ax in figures[0].axes]
    # the block is shaded on the delivery, the reservoir and battery, and the patient plots too
    for fig in figures:
        for ax in fig.axes:
            if ax.get_ylabel() in ("cumulative volume (µL)", "reservoir (mL)", "battery (%)",
                                   "spinal-fluid level (ng/mL)"):
                spans = [p for p in ax.patches if p.get_alpha() == 0.18]
                assert spans, ax.get_ylabel()

# What each scenario event does to the world: clinic commands go through the
# pump's own command interface (as over the programmer link); faults act on the
# simulated hardware only, and the pump has to find out for itself.
# (the engine imports this module, never the other way: the reset causes come
# from the firmware's own names)
from pump.stops import RESET_POWER_ON, RESET_WATCHDOG, RESET_SOFT
from emulator.preset import fmt_time
from emulator.store import FaultCollision

RESET_CAUSES = {"power_on": RESET_POWER_ON, "watchdog": RESET_WATCHDOG, "soft": RESET_SOFT}
UL = 1000        # nL per uL
ML = 1000000     # nL per mL


def _nl(ml):
    return int(round(ml * ML))


def apply_start(w):
    """The pump as the scenario finds it: drug in the reservoir and a program."""
    st = w.sc.start
    if st.get("fill_ml"):
        conc = st["concentration_ug_ml"]
        vol = _nl(st["fill_ml"])
        w.reservoir.fill(vol, st.get("actual_concentration_ug_ml", conc))
        w.command("refill", w.pump.refill, vol, conc, 0)
    if "program" in st:
        program(w, {"program": st["program"]})


def program(w, a):
    prog = dict(a["program"])
    before = w.resets
    res, err = w.command("program", w.pump.program_now, prog)
    if err is None:
        w.programs.append((w.clock.now, prog, res.readback()))
    elif w.resets != before:
        # the reset cut a write after the program was saved: if the pump
        # came back with it, it is in force from now, whatever the answer was
        now = w.pump.status()["program"]
        asked = _readback_of(w, prog)
        if now is not None and asked is not None and now == asked:
            w.programs.append((w.clock.now, prog, now))
            w.took_effect.add(len(w.commands) - 1)


def _readback_of(w, prog):
    """What the pump reads back for this program (its own validation), or None."""
    from pump.program import validate, ProgramError
    try:
        return validate(prog, w.profile["stroke_nl"]).readback()
    except (ProgramError, TypeError, ValueError, KeyError):
        return None


def refill(w, a):
    told_conc = a["concentration_ug_ml"]
    real_conc = a.get("actual_concentration_ug_ml", told_conc)
    vol = _nl(a["volume_ml"])
    residual = w.reservoir.empty_out()
    reported = _nl(a["residual_ml"]) if "residual_ml" in a else residual
    if a.get("pocket_fill"):
        # the needle missed the port: the drug goes under the skin, all at once
        w.patient.dose(w.clock.now, vol * real_conc / 1e6, "tissue")
        w.log("world", "fault", "pocket_fill", "%d nL at %d ug/mL injected into the pocket" % (vol, real_conc))
    else:
        w.reservoir.fill(vol, real_conc)
        if real_conc != told_conc:
            w.log("world", "fault", "wrong_concentration",
                  "reservoir filled at %d ug/mL, pump told %d ug/mL" % (real_conc, told_conc))
    before, believed = w.resets, w.pump.facts()["reservoir_nl"]
    res, err = w.command("refill", w.pump.refill, vol, told_conc, reported)
    if err is not None and w.resets != before:
        st = w.pump.status()
        if st["concentration_ug_ml"] == told_conc and st["fill_nl"] == vol and st["reservoir_nl"] > believed:
            # cut by a reset, but the restarted pump holds this fill (only a
            # refill makes it believe it holds more than before): it was told
            w.took_effect.add(len(w.commands) - 1)


ACTIONS = {
    # clinic and patient, through the pump's command interface
    "program": program,
    "refill": refill,
    "bolus": lambda w, a: w.command("bolus", w.pump.clinician_bolus, a["dose_ug"], a["duration_min"]),
    "patient_bolus": lambda w, a: w.command("patient_bolus", w.pump.patient_bolus),
    "prime": lambda w, a: w.command("prime", w.pump.prime, a["duration_min"],
                                    *([a["volume_ul"] * UL] if "volume_ul" in a else [])),
    "suspend": lambda w, a: w.command("suspend", w.pump.suspend),
    "resume": lambda w, a: w.command("resume", w.pump.resume),
    "acknowledge": lambda w, a: w.command("acknowledge " + a["alarm"], w.pump.acknowledge, a["alarm_code"]),
    "silence": lambda w, a: w.command("silence", w.pump.silence),
    "alarm_test": lambda w, a: w.command("alarm_test", w.pump.alarm_test),
    "set_clock": lambda w, a: w.command("set_clock", w.pump.set_clock, w.clock.wall_s() + a["shift_min"] * 60),
    # the world: the pump is not told
    "clock_jump": lambda w, a: w.clock.jump(a["shift_min"] * 60),
    "kink": lambda w, a: w.catheter.kink(a["severity_pct"]),
    "block": lambda w, a: w.catheter.block(),
    "release": lambda w, a: w.catheter.release(),
    "disconnect": lambda w, a: w.catheter.disconnect(),
    "leak": lambda w, a: w.catheter.leak(a["pct"]),
    "migrate": lambda w, a: w.catheter.migrate(),
    "revise_catheter": lambda w, a: w.catheter.repair(),
    "stall": lambda w, a: w.motor.stall(a["strokes"]),
    "jam": lambda w, a: w.motor.jam(a.get("after_strokes", 0)),
    "repair_motor": lambda w, a: w.motor.repair(),
    "battery_drop": lambda w, a: w.battery.drop_to(a["to_permille"]),
    "reset": lambda w, a: w.reboot(RESET_CAUSES[a.get("cause", "power_on")]),
    "reset_during_write": lambda w, a: w.store.arm_cut(a.get("nth_write", 1), a.get("atomic", False),
                                                       a.get("repeat", 1), w.clock.now),
    # the zone's daylight-saving change: the clock moves by itself (timezone = ...)
    "dst": lambda w, a: w.clock.jump(a["shift_min"] * 60),
    "bit_flip": lambda w, a: w.store.flip(a["key"], a["bit"]),
    "lumbar_bolus": lambda w, a: (w.patient.dose(w.clock.now, a["dose_ug"], "csf"),
                                  w.lumbar.append((w.clock.now, a["dose_ug"]))),
}
WORLD = {"clock_jump", "kink", "block", "release", "disconnect", "leak", "migrate", "revise_catheter",
         "stall", "jam", "repair_motor", "battery_drop", "reset", "reset_during_write", "bit_flip", "dst"}


def apply(w, ev, placed=False, write_reached=False):
    """Do what one event says. placed: an armed event whose trigger or
    command has come; write_reached: and its storage write too."""
    if ev.at_write and not write_reached:
        w.arming.at_write(w.store.writes + ev.at_write, ev)
        return
    if ev.do in WORLD:
        kind = "repair" if ev.do in ("release", "revise_catheter", "repair_motor") else (
            "clock" if ev.do == "dst" else "fault")
        detail = ev.summary()
        if placed:
            detail += " (placed: %s)" % ("at write %d" % w.store.writes if write_reached else
                                        ev.trigger if ev.trigger else "during " + ev.during)
        w.log("world", kind, ev.do, detail)
    elif ev.do == "lumbar_bolus":
        w.log("clinic", "screening", "lumbar_bolus", "%d ug by lumbar puncture" % ev.args["dose_ug"])
    # a fault only changes the hardware: the pump finds out at its next wake-up
    wall = w.clock.wall_s()
    try:
        ACTIONS[ev.do](w, ev.args)
    except FaultCollision as c:
        # the pump did not reach the storage write the pending cut waits for:
        # the newer cut is not applied (it must not silently replace the
        # other), and the run reports that it did not test what it says
        text = ("events[%d] armed a power cut at %s while the one armed at %s was still %d storage writes "
                "away: not applied (for a cut at every Nth write use nth_write with repeat)"
                % (ev.index, fmt_time(w.clock.now), fmt_time(c.armed_ms), c.writes_to_go))
        w.log("world", "fault", "collision", text)
        w.collisions.append((w.clock.now, ev.index, text))
    if w.clock.wall_s() != wall:
        w.walls.append((w.clock.now, w.clock.wall_s()))

# I7: every alarm raised when its cause is there, and heard. The causes come
# from the world's side of the ports, never from the pump: the pressure
# readings the pump took that make an occlusion or a leak by its profile's
# own rule, the first battery reading at or below a threshold, the motor's
# stalls in a row, and each alarm the pump logged, which must sound. A pump
# that ignores its pressure sensor, its gauge or its motor, or that stays
# mute, fails here though its own log looks calm.
from pump import alarms as A
from pump import eventlog as E

from emulator import pumplog as L
from emulator.verdict import result, OK, FAIL, NOT_CHECKED
from emulator.sortedsearch import bisect_left, bisect_right

SOUND_SLACK_MS = 2000      # an alarm sounds in the wake-up that raises it


def _stall_runs(v, stalls):
    """Times of the last stall of each run of stall_retries + 1 stalls in a
    row (each retry within its retry time, no stroke or restart between):
    the pump must then stop with motor_stall up."""
    p = v.profile
    need = p.get("stall_retries", 2) + 1
    gap = p.get("stroke_ms", 200) + p.get("stall_retry_ms", 1000) + 1000
    restarts = [v.pt(t) for t in v.w.restart_times]
    out = []
    run = []
    for t in stalls:
        if run and (t - run[-1] > gap or bisect_right(v.times, t) > bisect_left(v.times, run[-1])
                    or bisect_right(restarts, t) > bisect_right(restarts, run[-1])):
            run = []
        run.append(t)
        if len(run) == need:
            out.append(t)
            run = []
    return out


def check_alarms(v):
    name = "alarms raised on their cause, and heard"
    w = v.w
    p = v.profile
    stroke_ms = p.get("stroke_ms", 200)
    causes = []    # (t, what, alarm codes any of which must be up)
    for t in w.sensors.occlusion_due:
        causes.append((v.pt(t), "occlusion readings", (A.OCCLUSION,)))
    for t in w.sensors.leak_due:
        causes.append((v.pt(t), "leak readings", (A.CATHETER_LEAK,)))
    due = w.sensors.battery_due
    if "battery_eri" in due:
        causes.append((v.pt(due["battery_eri"]), "battery at ERI", (A.BATTERY_ERI, A.BATTERY_EOS)))
    if "battery_eos" in due:
        causes.append((v.pt(due["battery_eos"]), "battery at EOS", (A.BATTERY_EOS,)))
    for t in _stall_runs(v, [v.pt(t) for t in w.motor.stall_times]):
        causes.append((t + stroke_ms, "motor stalls in a row", (A.MOTOR_STALL,)))
    causes.sort()
    missed = [(t, what) for t, what, codes in causes
              if not any(L.alarm_up(v.raw_events, c, t) for c in codes)]
    sounds = sorted(v.pt(t) for t, _ in w.annunciator.sounds)
    raised = [(t, code) for t, kind, code, a, b in v.raw_events if kind == E.ALARM and 0 < code]
    mute = []
    j = 0
    for t, code in raised:
        while j < len(sounds) and sounds[j] < t:
            j += 1
        if not (j < len(sounds) and sounds[j] <= t + SOUND_SLACK_MS):
            mute.append((t, code))
    covered = "%d causes from the sensors and the motor, %d alarms raised, %d sounds" % (
        len(causes), len(raised), len(sounds))
    more = {"causes": len(causes), "missed": len(missed), "unheard": len(mute)}
    if missed:
        t, what = missed[0]
        return result("I7", name, FAIL, "%d causes with no alarm up, first %s at %d ms" % (len(missed), what, t),
                      covered, **more)
    if mute:
        t, code = mute[0]
        return result("I7", name, FAIL, "%d alarms raised without a sound, first %s at %d ms"
                      % (len(mute), A.name(code), t), covered, **more)
    if not causes and not raised:
        return result("I7", name, NOT_CHECKED, "no cause for an alarm and none raised: nothing to judge",
                      covered, **more)
    return result("I7", name, OK, "%d causes each with its alarm up, %d alarms each sounded"
                  % (len(causes), len(raised)), covered, **more)

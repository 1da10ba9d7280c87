# The lab engine (emulator/lab.py) through a plan of steps and actions, as the
# lab page drives it. The same file runs under CPython and under the
# MicroPython unix port (tests/test_lab_engine.py compares the two):
#
#   micropython lab_script.py ROOT PRESET.json PLAN.json  -> one JSON line
import json
import sys


def run(preset_text, profile_text, plan, days=0):
    from emulator.lab import Lab
    lab = Lab.from_json(preset_text, profile_text, days)
    acts = []
    for op in plan:
        if op[0] == "step":
            lab.step(op[1])
        elif op[0] == "act":
            acts.append(json.loads(lab.act(op[1], json.dumps(op[2]))))
        elif op[0] == "next":
            while json.loads(lab.next_event(op[1] if len(op) > 1 else 20000))["more"]:
                pass
        elif op[0] == "end":
            while not lab.finished:
                lab.step(op[1] if len(op) > 1 else 6 * 3600000)
    view = json.loads(lab.view())
    result = json.loads(lab.result())
    return {"acts": acts, "view": view, "result": result}


def main(argv):
    root, preset, plan = argv[1], argv[2], argv[3]
    sys.path.insert(0, root)
    sys.path.insert(0, root + "/firmware")
    with open(preset) as f:
        preset_text = f.read()
    with open(root + "/boards/sim.json") as f:
        profile_text = f.read()
    with open(plan) as f:
        spec = json.load(f)
    out = run(preset_text, profile_text, spec["plan"], spec.get("days", 0))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)

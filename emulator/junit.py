# JUnit XML for CI: one <testsuite> per scenario run, one <testcase> per
# invariant check and per scenario expectation. A failed check is a
# <failure>, a check that covered nothing is <skipped> (never a pass), a
# scenario that could not run (a bad file) is one testcase with an <error>.
# The layout is the common one (Jenkins' junit-10.xsd; GitHub, GitLab and
# pytest's readers take it).
import socket
import xml.etree.ElementTree as ET


def _case(suite, classname, name, status, message, text, seconds=0.0):
    tc = ET.SubElement(suite, "testcase", {"classname": classname, "name": name, "time": "%.3f" % seconds})
    if status == "fail":
        f = ET.SubElement(tc, "failure", {"type": "fail", "message": message})
        f.text = text
    elif status == "not checked":
        s = ET.SubElement(tc, "skipped", {"type": "not checked", "message": message})
        s.text = text
    elif status == "error":
        e = ET.SubElement(tc, "error", {"type": "bad scenario", "message": message})
        e.text = text
    return tc


def _suite(root, name, file, seconds):
    return ET.SubElement(root, "testsuite", {"name": name, "file": file, "time": "%.3f" % seconds,
                                             "hostname": socket.gethostname()})


def _count(suite):
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))


def add_report(root, report):
    """One finished run (report.json's dict) as a testsuite."""
    sc = report["scenario"]
    name = "pump-emu." + sc["name"]
    suite = _suite(root, name, sc["file"], report.get("run", {}).get("wall_s", 0.0))
    props = ET.SubElement(suite, "properties")
    for k, v in (("seed", sc["seed"]), ("board", sc["board"]), ("duration_ms", sc["duration_ms"]),
                 ("final_state", report["final_state"]), ("delivered_nl", report["totals"]["delivered_nl"]),
                 ("scheduled_nl", report["totals"]["scheduled_nl"])):
        ET.SubElement(props, "property", {"name": k, "value": str(v)})
    for c in report["invariants"]:
        _case(suite, name + ".invariants", "%s %s" % (c["id"], c["name"]), c["status"], c["detail"],
              "%s\ncovered: %s" % (c["detail"], c["covered"]))
    for i, e in enumerate(report["expectations"]):
        _case(suite, name + ".expectations", "expect[%d] %s" % (i, e["expect"]), e["status"],
              e.get("detail") or e["expect"], "%s: %s" % (e["expect"], e.get("detail", "")))
    _count(suite)
    return suite


def add_error(root, name, file, message):
    """A scenario that did not run: a bad file (exit status 2)."""
    suite = _suite(root, "pump-emu." + name, file, 0.0)
    _case(suite, "pump-emu." + name, "scenario loads", "error", message, message)
    _count(suite)
    return suite


def new():
    return ET.Element("testsuites", {"name": "pump-emu"})


def write(root, path):
    suites = root.findall("testsuite")
    for k in ("tests", "failures", "errors"):
        root.set(k, str(sum(int(s.get(k)) for s in suites)))
    root.set("time", "%.3f" % sum(float(s.get("time")) for s in suites))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)

"""The student lab: build lab/build/ and serve lab/ on 127.0.0.1.

  python -m lab [--port 8765] [--scenario catheter-kink] [--build-only]

`make lab` runs this. The page (lab/index.html) runs the unchanged firmware
core and the emulator's models in the MicroPython WebAssembly build, which
`npm ci` installs into lab/node_modules from lab/package-lock.json (pinned;
emulator/mpwasm.py installs it, for the page and for the emulator's wasm32
runtime alike). The build step, on CPython, does what MicroPython in the
browser cannot:
  - each library scenario (scenarios/*.toml) is read and checked by
    emulator/scenario.py and written as JSON (lab/build/presets/NAME.json,
    the parsed scenario, as to_plain() gives it), with an index;
  - the board profile boards/sim.json is copied;
  - the firmware core (firmware/pump/*.py) and the emulator modules the page
    needs (with logwords/, which they import) are copied under lab/build/py/, with a manifest the page reads to
    write them into MicroPython's file system;
  - the guided exercises (docs/lab/*.md) become small HTML pages.
Nothing is fetched from the internet when the page runs. Educational,
non-medical.
"""
import argparse
import functools
import html
import http.server
import json
import os
import re
import shutil
import sys

from emulator.mpwasm import InstallError, installed, npm_ci, pinned_version

LAB = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(LAB)
BUILD = os.path.join(LAB, "build")
DOCS = os.path.join(ROOT, "docs", "lab")
# the emulator modules the page runs (the rest need CPython: TOML, csv, plots, pipes)
EMULATOR_MODULES = ("__init__", "accounting", "actions", "arming", "battery", "catheter", "check_alarms",
                    "check_clinic", "checks", "clinic", "clock", "engine", "events", "expect", "lab", "motor",
                    "patient", "preset", "prng", "pumplog", "refusals", "reservoir", "scheduled", "sensorlog",
                    "sortedsearch", "store", "verdict")
# ... and the packages beside the emulator that those import
PAGE_PACKAGES = {"logwords": ("__init__", "events")}
DEFAULT_PORT = 8765


class LabError(RuntimeError):
    """The lab page reported an error, or was not ready in time."""


# --- the exercises: a small Markdown subset to HTML ------------------------------
def _inline(text):
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    t = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", t)

    def link(m):
        label, href = m.group(1), m.group(2)
        if href.startswith("http://127.0.0.1:"):
            # the lab itself, on whatever port it is served: relative to build/docs/
            href = "../../" + href.split("/", 3)[3]
            label = html.escape(html.unescape(label)).replace("http://127.0.0.1:8765/", "")
        elif href.startswith("../"):
            # the repository's other docs are not served: name the file
            return "%s (<code>docs/%s</code>)" % (label, html.escape(href[3:]))
        elif href.endswith(".md"):
            href = href[:-3] + ".html"
        return '<a href="%s">%s</a>' % (html.escape(href), label)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, t)


def markdown_html(md, title):
    """Headings, paragraphs, lists, code blocks, tables, <details> and inline code,
    links, bold and italics: what docs/lab/*.md use."""
    out = []
    lines = md.splitlines()
    i = 0
    para = []

    def flush():
        if para:
            out.append("<p>%s</p>" % _inline(" ".join(para)))
            para.clear()
    while i < len(lines):
        ln = lines[i]
        s = ln.strip()
        if s.startswith("```"):
            flush()
            i += 1
            code = []
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            out.append("<pre><code>%s</code></pre>" % html.escape("\n".join(code)))
        elif s.startswith("#"):
            flush()
            level = len(s) - len(s.lstrip("#"))
            out.append("<h%d>%s</h%d>" % (level, _inline(s[level:].strip()), level))
        elif s.startswith(("<details", "</details", "<summary")):
            flush()
            out.append(s)
        elif s.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            i -= 1
            t = ["<table>"]
            for n, r in enumerate(rows):
                tag = "th" if n == 0 else "td"
                t.append("<tr>%s</tr>" % "".join("<%s>%s</%s>" % (tag, _inline(c), tag) for c in r))
            t.append("</table>")
            out.append("".join(t))
        elif re.match(r"^(\d+\.|[-*])\s", s):
            flush()
            ordered = s[0].isdigit()
            items = []
            while i < len(lines) and (re.match(r"^(\d+\.|[-*])\s", lines[i].strip())
                                      or (lines[i].startswith("   ") and lines[i].strip() and items)):
                t = lines[i].strip()
                if re.match(r"^(\d+\.|[-*])\s", t) and not lines[i].startswith("   "):
                    items.append(re.sub(r"^(\d+\.|[-*])\s+", "", t))
                else:
                    items[-1] += " " + re.sub(r"^(\d+\.|[-*])\s+", "", t)
                i += 1
            i -= 1
            tag = "ol" if ordered else "ul"
            out.append("<%s>%s</%s>" % (tag, "".join("<li>%s</li>" % _inline(it) for it in items), tag))
        elif not s:
            flush()
        else:
            para.append(s)
        i += 1
    flush()
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>%s</title><link rel=\"stylesheet\" href=\"../../lab.css\"></head>"
            "<body class=\"doc\"><main>%s<p><a href=\"../../index.html\">Back to the lab</a></p></main></body></html>"
            % (html.escape(title), "\n".join(out)))


def _exercises():
    """-> [{file, title, preset}] of docs/lab/*.md (README.md is the index)."""
    out = []
    if not os.path.isdir(DOCS):
        return out
    for fn in sorted(os.listdir(DOCS)):
        if not fn.endswith(".md"):
            continue
        with open(os.path.join(DOCS, fn), encoding="utf-8") as f:
            md = f.read()
        m = re.search(r"^#\s+(.+)$", md, re.M)
        title = m.group(1).strip() if m else fn[:-3]
        p = re.search(r"[?&]scenario=([\w-]+)", md)
        index = fn == "README.md"
        out.append({"file": fn[:-3] + ".html", "source": "docs/lab/" + fn, "title": title,
                    "preset": p.group(1) if p and not index else None, "index": index, "md": md})
    return out


def build(out=BUILD):
    """Write lab/build/. -> the number of presets."""
    from emulator import scenario as S
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "presets"))
    index = []
    for name, path in S.library():
        sc = S.load(path)
        plain = S.to_plain(sc)
        with open(os.path.join(out, "presets", name + ".json"), "w") as f:
            json.dump(plain, f, separators=(",", ":"))
        index.append({"name": name, "title": sc.title, "duration_ms": sc.duration_ms,
                      "description": sc.description, "tags": sc.tags})
    with open(os.path.join(out, "presets", "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    os.makedirs(os.path.join(out, "boards"))
    shutil.copy(os.path.join(ROOT, "boards", "sim.json"), os.path.join(out, "boards", "sim.json"))
    files = []
    src = os.path.join(ROOT, "firmware", "pump")
    for fn in sorted(os.listdir(src)):
        if fn.endswith(".py"):
            files.append(("pump/" + fn, os.path.join(src, fn)))
    for mod in EMULATOR_MODULES:
        files.append(("emulator/%s.py" % mod, os.path.join(ROOT, "emulator", mod + ".py")))
    for pkg, mods in PAGE_PACKAGES.items():
        for mod in mods:
            files.append(("%s/%s.py" % (pkg, mod), os.path.join(ROOT, pkg, mod + ".py")))
    for rel, path in files:
        dst = os.path.join(out, "py", rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(path, dst)
    ex = _exercises()
    os.makedirs(os.path.join(out, "docs"))
    for e in ex:
        with open(os.path.join(out, "docs", e["file"]), "w", encoding="utf-8") as f:
            f.write(markdown_html(e.pop("md"), e["title"]))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"py": [rel for rel, _ in files], "micropython": pinned_version(),
                   "exercises": ex, "presets": len(index)}, f, indent=1)
    return len(index)


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = dict(http.server.SimpleHTTPRequestHandler.extensions_map,
                          **{".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                             ".json": "application/json", ".py": "text/plain; charset=utf-8",
                             ".md": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8",
                             ".css": "text/css"})

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)


def make_server(port=DEFAULT_PORT, verbose=False):
    """An HTTP server for lab/ on 127.0.0.1 (port 0: any free port); not started."""
    handler = functools.partial(Handler, directory=LAB)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    srv.verbose = verbose
    return srv


# --- a headless browser for the tests and the bench ----------------------------
def _first_file(*cands):
    for c in cands:
        if c and os.path.isfile(c):
            return c
    return None


def browser_paths():
    """-> (chromium, chromedriver) from the system packages, or None each.
    $CHROMIUM and $CHROMEDRIVER override."""
    chromium = _first_file(os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                           shutil.which("chromium-browser"))
    driver = _first_file(os.environ.get("CHROMEDRIVER"), "/usr/bin/chromedriver", shutil.which("chromedriver"))
    return chromium, driver


def browser_missing():
    """-> why a headless browser cannot run the lab here (a sentence), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the test extra: pip install -e '.[test]')"
    chromium, driver = browser_paths()
    if chromium is None:
        return "Chromium is not installed (Debian: apt-get install chromium chromium-driver)"
    if driver is None:
        return "chromedriver is not installed (Debian: apt-get install chromium-driver)"
    if not installed() and shutil.which("npm") is None:
        return "npm is not installed, and lab/node_modules has no MicroPython WebAssembly build"
    return None


def start_browser(width=1400, height=1800):
    """Headless Chromium through chromedriver, both from the system: Selenium
    Manager is never asked to find or download anything."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver = browser_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--disable-extensions", "--autoplay-policy=no-user-gesture-required",
              "--window-size=%d,%d" % (width, height)):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


class Site:
    """lab/ served on 127.0.0.1 (a free port) in a thread: `with Site() as url:`."""

    def __enter__(self):
        import threading
        self.srv = make_server(0)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d/" % self.srv.server_address[1]

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()


def wait_ready(driver, timeout=60):
    """Wait for the page to load MicroPython and the pump; raise on a page error."""
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, err = driver.execute_script(
            "return [document.body.dataset.ready, window.labApp ? window.labApp.error : null]")
        if err:
            raise LabError("the lab page says: %s" % err)
        if ready == "yes":
            return
        time.sleep(0.05)
    raise LabError("the lab page was not ready after %d s" % timeout)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lab", description=__doc__.split("\n")[0])
    env_port = os.environ.get("PORT", "")
    ap.add_argument("--port", type=int, default=int(env_port) if env_port.isdigit() else DEFAULT_PORT,
                    help="TCP port on 127.0.0.1 (default $PORT or %d; make lab PORT=8766)" % DEFAULT_PORT)
    ap.add_argument("--scenario", default="catheter-kink", help="the preset in the printed URL")
    ap.add_argument("--build-only", action="store_true", help="write lab/build/ and stop")
    ap.add_argument("--verbose", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    try:
        npm_ci(quiet=False)
    except InstallError as e:
        print("lab: %s" % e, file=sys.stderr)
        return 2
    n = build()
    print("lab: %d presets, firmware and emulator in lab/build/; MicroPython WebAssembly %s (npm, pinned)"
          % (n, pinned_version()))
    if args.build_only:
        return 0
    try:
        srv = make_server(args.port, args.verbose)
    except OSError as e:
        print("lab: cannot listen on 127.0.0.1:%d (%s); try make lab PORT=8766" % (args.port, e.strerror),
              file=sys.stderr)
        return 2
    port = srv.server_address[1]
    print("lab: open http://127.0.0.1:%d/?scenario=%s" % (port, args.scenario))
    print("lab: exercises in docs/lab/ (linked from the page); Ctrl-C to stop")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

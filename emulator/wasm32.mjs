// The firmware under a 32-bit MicroPython: the WebAssembly build the student lab
// pins (lab/package.json, installed by `npm ci` in lab/), run by Node with no
// browser. The emulator's wasm32 runtime (emulator/wasm32.py), the 32-bit
// heap and allocation tests (tests/test_wasm32.py) and `make bench` start it:
//
//   node emulator/wasm32.mjs [--heap BYTES] [--lib DIR] [--put HOST=PATH]...
//        [--mkdir PATH]... [--ls PATH]... [--preload MOD,...] [--watch]
//        SCRIPT.py|MODULE [ARG...]
//
// --heap: the heap MicroPython is given, its GC tables included, as a board
// profile's heap_budget_bytes counts it (65536 gives a 64000-byte GC heap).
// --lib DIR: DIR's files (the firmware compiled to .mpy, as for a board) are
// copied to /lib, which is on sys.path as on a board. --put copies one more
// file in, --mkdir makes a folder (a store's root), --ls prints
// "ls PATH=name,..." at the end. SCRIPT.py runs from source, MODULE from /lib;
// either is imported as a module, with sys.argv = ["/NAME.py", ARG...]. If it
// defines step(), the runner then calls step() until it returns a false value,
// and finish() if defined: this port collects garbage only when control is back
// here, between calls, never inside one, so a long run must come back here as
// often as a board's collector would run. --preload imports those modules
// first, one call each, for the same reason.
//
// --watch measures the heap from here, between calls: every call that
// allocated is collected after it (gc.threshold(0)), then the live bytes are
// read; the GC heap's size is what micropython.mem_info() prints ("GC: total"),
// which grows by a whole new area when an allocation does not fit after a
// collection, and never shrinks in this build. Prints wasm_heap_start,
// wasm_heap_import, wasm_heap_max and wasm_heap_end (heap_max > heap_start: it
// did not fit), wasm_live_start, wasm_live_import (after the preloads and the
// script's import) and wasm_live_peak (the most live bytes after any call).
// Exit status 0; 1 with the Python traceback on stderr; 2 on bad arguments.
import fs from "fs";
import path from "path";
import { fileURLToPath, pathToFileURL } from "url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE = "@micropython/micropython-webassembly-pyscript";
const MP_JS = path.join(HERE, "..", "lab", "node_modules", ...PACKAGE.split("/"), "micropython.mjs");

function usage(msg) {
  process.stderr.write("wasm32: " + msg + "\n");
  process.exit(2);
}

const opts = { heap: 1 << 20, lib: null, put: [], mkdir: [], ls: [], preload: [], watch: false };
const argv = process.argv.slice(2);
while (argv.length && argv[0].startsWith("--")) {
  const o = argv.shift();
  if (o === "--watch") { opts.watch = true; continue; }
  if (!argv.length) usage(o + " needs a value");
  const v = argv.shift();
  if (o === "--heap") opts.heap = parseInt(v, 10);
  else if (o === "--lib") opts.lib = v;
  else if (o === "--put") opts.put.push(v.split("="));
  else if (o === "--mkdir") opts.mkdir.push(v);
  else if (o === "--ls") opts.ls.push(v);
  else if (o === "--preload") opts.preload.push(...v.split(","));
  else usage("unknown option " + o);
}
if (!argv.length) usage("no script");
const script = argv.shift();
if (!fs.existsSync(MP_JS)) usage("no MicroPython WebAssembly build in lab/node_modules: run `make lab` or `npm ci` in lab/ once");
const { loadMicroPython } = await import(pathToFileURL(MP_JS).href);

// stdin: the emulator's pipe, read as the script asks (a command, then the
// answers to its port calls). The device is given POSIX read semantics below:
// a read waits for at least one byte and returns what the pipe has, up to its
// length; 0 at the end of input.
const inbuf = Buffer.alloc(1 << 16);
let inLen = 0, inPos = 0;
function stdinRead(stream, buffer, offset, length) {
  if (inPos >= inLen) {
    for (;;) {
      try {
        inLen = fs.readSync(0, inbuf, 0, inbuf.length, null);
        break;
      } catch (e) {
        if (e.code === "EOF") { inLen = 0; break; }
        if (e.code !== "EAGAIN") throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
    }
    inPos = 0;
    if (inLen === 0) return 0;
  }
  const n = Math.min(length, inLen - inPos);
  for (let i = 0; i < n; i++) buffer[offset + i] = inbuf[inPos + i];
  inPos += n;
  return n;
}

// stdout and stderr: what MicroPython writes goes out in one write, not a call
// a byte; stdout is kept instead while the runner reads mem_info.
let captured = null;
const decoder = new TextDecoder();
const writer = (fd) => (stream, buffer, offset, length) => {
  const bytes = buffer.subarray(offset, offset + length);
  if (fd === 1 && captured !== null) captured.push(decoder.decode(bytes));
  else fs.writeSync(fd, bytes);
  return length;
};
const mp = await loadMicroPython({ heapsize: opts.heap, stdin: () => null, stdout: () => {}, stderr: () => {} });
const device = (p) => mp.FS.getDevice(mp.FS.lookupPath(p).node.rdev).stream_ops;
device("/dev/stdin").read = stdinRead;
device("/dev/stdout").write = writer(1);
device("/dev/stderr").write = writer(2);

function copyTree(src, dst) {
  try { mp.FS.mkdirTree(dst); } catch (e) { /* exists */ }
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name), d = dst + "/" + e.name;
    if (e.isDirectory()) copyTree(s, d);
    else mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
if (opts.lib) copyTree(opts.lib, "/lib");
for (const [host, where] of opts.put) mp.FS.writeFile(where, fs.readFileSync(host));
for (const d of opts.mkdir) mp.FS.mkdirTree(d);
// a .py file runs from source; a bare name is a module in /lib (its .mpy)
const name = script.endsWith(".py") ? path.basename(script, ".py") : script;
if (script.endsWith(".py")) mp.FS.writeFile("/" + name + ".py", fs.readFileSync(script));

function fail(e) {
  if (e && e.name === "PythonError") {
    if (e.type === "SystemExit") {
      const m = String(e.message).trim().split("\n").pop().replace(/^SystemExit:\s*/, "");
      if (m && m !== "SystemExit" && !/^\d+$/.test(m)) process.stderr.write(m + "\n");
      process.exit(/^\d+$/.test(m) ? parseInt(m, 10) : 1);
    }
    process.stderr.write(String(e.message));
    process.exit(1);
  }
  throw e;
}

// The board's own modules only: this build freezes extras (a Python binascii,
// an os package) that a Pico's or an ESP32's image does not.
mp.runPython("import sys\nif '.frozen' in sys.path: sys.path.remove('.frozen')\n" +
             "sys.argv.clear()\nsys.argv.extend(" + JSON.stringify(["/" + name + ".py", ...argv]) + ")");
// The GC heap's size as micropython.mem_info() prints it ("GC: total: N"):
// the areas it has, which only grow, by a new area when an allocation does
// not fit after a collection.
const micropython = mp.pyimport("micropython");
function heapTotal() {
  captured = [];
  micropython.mem_info();
  const m = /GC: total: (\d+)/.exec(captured.join(""));
  captured = null;
  return parseInt(m[1], 10);
}
const gc = mp.pyimport("gc");
const fig = {};
if (opts.watch) {
  gc.threshold(0);        // a call that allocated anything is collected after it
  gc.collect();
  fig.heap_start = fig.heap_max = heapTotal();
  fig.live_start = gc.mem_alloc();
}
let mod;
try {
  for (const m of opts.preload) {      // one call each: the garbage of one import is gone before the next
    mp.pyimport(m);
    if (opts.watch) fig.heap_max = Math.max(fig.heap_max, heapTotal());
  }
  mod = mp.pyimport(name);
} catch (e) { fail(e); }
let steps = 0;
if (opts.watch) {
  fig.heap_import = heapTotal();
  fig.heap_max = Math.max(fig.heap_max, fig.heap_import);
  gc.collect();
  fig.live_import = fig.live_peak = gc.mem_alloc();
}
let sizeSeen = opts.watch ? gc.mem_alloc() + gc.mem_free() : 0;
const builtins = mp.pyimport("builtins");
const has = (attr) => builtins.hasattr(mod, attr);
try {
  if (has("step")) {
    const step = mod.step;
    for (;;) {
      const more = step();
      steps++;
      if (opts.watch) {
        const live = gc.mem_alloc();        // collected on the way back here
        if (live > fig.live_peak) fig.live_peak = live;
        // mem_alloc + mem_free is the heap's size (plus the room it may add, a
        // constant) give or take a block; a new area is kilobytes
        if (live + gc.mem_free() > sizeSeen + 1024) {
          fig.heap_max = Math.max(fig.heap_max, heapTotal());
          sizeSeen = gc.mem_alloc() + gc.mem_free();
        }
      }
      if (!more) break;
    }
  }
  if (has("finish")) mod.finish();
} catch (e) { fail(e); }
for (const d of opts.ls) {
  let names = [];
  try { names = mp.FS.readdir(d).filter((n) => n !== "." && n !== ".."); } catch (e) { /* none */ }
  fs.writeSync(1, "ls " + d + "=" + names.sort().join(",") + "\n");
}
if (opts.watch) {
  fig.steps = steps;
  fig.heap_end = heapTotal();
  for (const k of ["heap_start", "heap_import", "heap_max", "heap_end", "live_start", "live_import", "live_peak",
                   "steps"]) {
    fs.writeSync(1, "wasm_" + k + "=" + fig[k] + "\n");
  }
}

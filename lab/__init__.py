"""The student lab: the web page (index.html, lab.js, lab.css) and, in
builder.py, what builds lab/build/ for it and serves it on 127.0.0.1
(`make lab`, `python -m lab`). The lab builds on the emulator; nothing
below it (emulator, host tools, firmware) imports the lab."""

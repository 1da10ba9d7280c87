# Every target bootstraps .venv itself, so a fresh clone needs only python3 and make
# (the lab also needs npm and Node, its browser tests Chromium: see README.md).
# Each target installs only what it needs: demo and lab the package alone, mpy,
# flash and repl the board tools too (extra [board]), the tests everything ([test]).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_STAMP   := $(VENV)/.installed-run
BOARD_STAMP := $(VENV)/.installed-board

.PHONY: demo test test-quick test-deep bench lab mpy flash repl mpy-check clean help

DEMO   ?= catheter-kink
# test-quick: the modules that check the pump's logic, the link, the host tools and
# the emulator's command line, with the small Hypothesis profile (well under 2 min
# on 2 cores); make test runs everything
QUICK  ?= tests/test_program.py tests/test_schedule.py tests/test_governor.py tests/test_timeofday.py \
          tests/test_monotime.py tests/test_controller.py tests/test_link_protocol.py tests/test_link_hmac.py \
          tests/test_link_sessions.py tests/test_pumpctl_errors.py tests/test_pumpctl_doses.py tests/test_plots.py tests/test_make.py
# (the 180-day small-int trace alone takes minutes: make test runs it)
QUICK_SKIP ?= --deselect tests/test_controller.py::test_180_days_hot_path_integers_stay_small

help:
	@echo "make demo       run a scenario through the emulator (DEMO=$(DEMO)); summary + plots in out/demo"
	@echo "make test       run the whole suite (CI profile): about 10-15 minutes on 2 cores"
	@echo "make test-quick the pump's logic, the link and the host tools with fewer examples: under 2 minutes"
	@echo "make bench      print the emulator's speed, the programmer link's round trip, fuzz rate and floods, board figures on 64-bit and 32-bit, the therapy history's capacity, the lab's speed"
	@echo "make lab        the student lab: the pump in a web page (MicroPython WebAssembly, needs npm); prints the URL (PORT=8765)"
	@echo "make test-deep  run the property tests with many more examples"
	@echo "make mpy BOARD=pico                    compile the firmware for a board (pico, pico2, esp32) into build/"
	@echo "make flash BOARD=pico PORT=/dev/ttyACM0 SERIAL=PUMP-0001  compile, copy it and that pump's own keys, reset"
	@echo "make repl PORT=/dev/ttyACM0            the board's REPL"
	@echo "make mpy-check  the MicroPython and mpy-cross tests only"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# the package and what running it needs (pyserial, matplotlib, ...)
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

# ... and the board tools (mpy-cross, mpremote)
$(BOARD_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[board]'
	@touch $@

# ... and the test tool chain (pytest, Hypothesis, the MicroPython unix port, Selenium, ...)
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(RUN_STAMP)
	$(BIN)/pump-emu run $(DEMO) --out out/demo
	@echo "plots: out/demo/story.png (the run on one page) delivery.png reservoir_battery.png alarms.png patient.png trumpet.png; docs/plots.md explains them"
	@echo "other scenarios: $(BIN)/pump-emu list; then make demo DEMO=<name>"

bench: $(STAMP)
	$(BIN)/python bench/emu_bench.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/link_bench.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/history_bench.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/board_bench.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/board32_bench.py
	$(BIN)/python bench/lab_bench.py
	$(BIN)/python bench/campaign_bench.py

lab: $(RUN_STAMP)
	$(BIN)/python -m lab $(if $(PORT),--port $(PORT))

test: $(STAMP)
	@$(BIN)/python -c "from lab.builder import browser_missing as m; w = m(); print('make test: the lab browser tests (tests/test_lab.py) will be SKIPPED: ' + w) if w else None"
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -c "from emulator.wasm32 import missing as m; w = m(); print('make test: the 32-bit MicroPython tests (tests/test_wasm32.py) will be SKIPPED: ' + w) if w else None"
	PATH="$(CURDIR)/$(BIN):$$PATH" HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q -n logical --dist loadfile

test-quick: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest -q \
	    -m "not micropython and not browser and not wasm32 and not deep" $(QUICK_SKIP) $(QUICK)

test-deep: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q

mpy: $(BOARD_STAMP)
	@$(BIN)/python -m host_tools.flash mpy "$(BOARD)"

flash: $(BOARD_STAMP)
	@$(BIN)/python -m host_tools.flash flash "$(BOARD)" "$(PORT)" $(if $(KEYS),--keys "$(KEYS)") $(if $(SERIAL),--serial "$(SERIAL)")

repl: $(BOARD_STAMP)
	@$(BIN)/python -m host_tools.flash repl "$(PORT)"

mpy-check: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q tests/test_micropython.py

clean:
	rm -rf $(VENV) build out *.egg-info .pytest_cache .hypothesis

# MicroPython freeze manifest for the pump (pico, pico2, esp32 alike).
#
# Frozen into the firmware image, the core's and the adapters' bytecode runs
# from flash and the heap holds only the pump's own objects. Loaded from .mpy
# files (what `make flash` does) the core's code and objects make a 32-bit heap
# peak at 81 KB, 107 KB with the link, and 30 days need a 120 KB heap with the
# link (docs/wiring.md, `make bench`), so a board held to a heap of 64 KB needs
# this build:
#   cd micropython/ports/rp2 && make BOARD=RPI_PICO FROZEN_MANIFEST=$PWD/../../../itb/boards/manifest.py
#   cd micropython/ports/esp32 && make BOARD=ESP32_GENERIC FROZEN_MANIFEST=...
# then copy only main.py, board.json and keys.json to the board.
include("$(PORT_DIR)/boards/manifest.py")

package("pump", base_path="../firmware")
# hw/simbus.py is the emulator's adapter, not a board's
package("hw", files=("__init__.py", "annunciator.py", "button.py", "clock.py", "link.py", "motor.py",
                     "sensors.py", "store.py"), base_path="../firmware")

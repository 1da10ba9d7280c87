# Pump firmware core: pure, port-driven dosing logic that runs unchanged on
# MicroPython boards, the MicroPython unix port and CPython (the emulator).
# The path of one dose: monotime -> schedule -> governor -> ledger -> motor
# -> catheter/battery/reservoir -> eventlog -> alarms; core.Pump wires them.

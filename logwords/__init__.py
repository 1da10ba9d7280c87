"""The pump's event-log records in words: a kind, a code and two numbers
named with the firmware's own tables (logwords.events.describe). pumpctl
shows a pump's log with it (`pumpctl log`) and the emulator writes
events.csv with it. It imports only the firmware core (`pump`), and runs
under MicroPython too (the student lab's page)."""

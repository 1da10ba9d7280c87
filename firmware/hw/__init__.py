# Board adapters: the pump core's ports built on machine and time. Each is thin:
# the logic (what a stroke is, when to alarm) lives in the core.

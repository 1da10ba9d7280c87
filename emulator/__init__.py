"""The pump emulator: the unchanged firmware core against simulated hardware in
accelerated time. See docs/emulator.md and docs/scenarios.md."""

"""Host tools for the pump's programmer link: the client library (pumplink),
the pumpctl command line, and make mpy / flash / repl for a board (flash).
The link's keys are linkkeys/, which the emulator's serve mode uses too."""

# The programmer link's byte port: USB CDC (the REPL's stdin/stdout, with the
# REPL's Ctrl-C turned off) or a UART. read() never blocks.
import sys


class UsbCdcPort:
    def __init__(self):
        import select
        try:
            import micropython
            micropython.kbd_intr(-1)     # frames may hold 0x03: not a Ctrl-C
        except (ImportError, AttributeError):
            pass
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.poll = select.poll()
        self.poll.register(self.inp, select.POLLIN)

    def read(self):
        data = b""
        while self.poll.poll(0):
            b = self.inp.read(1)
            if not b:
                break
            data += b
            if len(data) >= 256:
                break
        return data

    def write(self, data):
        self.out.write(data)


class UartPort:
    def __init__(self, cfg):
        from machine import UART, Pin
        self.uart = UART(cfg["id"], baudrate=cfg["baud"], tx=Pin(cfg["tx"]), rx=Pin(cfg["rx"]))

    def read(self):
        n = self.uart.any()
        return self.uart.read(n) if n else b""

    def write(self, data):
        self.uart.write(data)

# The programmer link's byte port: USB CDC (the REPL's stdin/stdout, with the
# REPL's Ctrl-C turned off) or a UART. read(n) never blocks and returns at
# most n bytes (the link's reader has room for that many): the rest waits in
# the port, so a burst is never cut by the pump; what it returns is valid
# until the next read (the link copies it at once). write() copies what it is
# given (the link reuses its error answers' buffers).
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
        # bytes come one at a time (poll says only "at least one"), into
        # buffers made here: a read allocates one view, not a bytes per byte
        self.buf = bytearray(256)
        self.one = bytearray(1)

    def read(self, n=256):
        if n > 256:
            n = 256
        i = 0
        while i < n and self.poll.poll(0):
            if not self.inp.readinto(self.one):
                break
            self.buf[i] = self.one[0]
            i += 1
        return memoryview(self.buf)[:i] if i else b""

    def write(self, data):
        self.out.write(data)


class UartPort:
    def __init__(self, cfg):
        from machine import UART, Pin
        self.uart = UART(cfg["id"], baudrate=cfg["baud"], tx=Pin(cfg["tx"]), rx=Pin(cfg["rx"]))

    def read(self, n=256):
        k = self.uart.any()
        if k > n:
            k = n
        return self.uart.read(k) if k else b""

    def write(self, data):
        self.uart.write(data)

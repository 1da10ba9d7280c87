# The pressure and battery ports: ADC readings turned into the core's units
# with the board profile's calibration (integers only).
from machine import ADC, Pin


def _adc(pin_no, cfg):
    adc = ADC(Pin(pin_no))
    if cfg.get("atten_11db") and hasattr(ADC, "ATTN_11DB"):
        adc.atten(ADC.ATTN_11DB)      # ESP32: the full 0-3.3 V range
    return adc


class PressureSensor:
    """Catheter back-pressure in mmHg from a gauge module on an ADC pin."""

    def __init__(self, pin_no, cfg):
        self.adc = _adc(pin_no, cfg)
        self.zero = cfg["pressure_zero_u16"]
        self.span = cfg["pressure_span_u16"]
        self.full = cfg["pressure_full_mmhg"]

    def read(self):
        raw = self.adc.read_u16() - self.zero
        if raw < 0:
            raw = 0
        return raw * self.full // self.span


class BatteryGauge:
    """Charge in permille from the cell voltage through a divider."""

    def __init__(self, pin_no, cfg):
        self.adc = _adc(pin_no, cfg)
        self.num = cfg["battery_divider_num"]
        self.den = cfg["battery_divider_den"]
        self.ref = cfg["adc_ref_mv"]
        self.full = cfg["battery_full_mv"]
        self.empty = cfg["battery_empty_mv"]

    def millivolts(self):
        return self.adc.read_u16() * self.ref * self.num // (65535 * self.den)

    def level(self):
        mv = self.millivolts()
        if mv <= self.empty:
            return 0
        if mv >= self.full:
            return 1000
        return (mv - self.empty) * 1000 // (self.full - self.empty)

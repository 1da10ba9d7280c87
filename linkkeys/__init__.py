"""The programmer link's keys, in one place for every tool that holds them:
per-pump role keys derived from a master key (HKDF-SHA256), key files, and
the order in which a tool looks for them (linkkeys.keys). The programmer's
tools (pumpctl, pumplink, make flash) and the emulator's `pump-emu serve`
import it; it imports only the firmware core's link names (`pump`)."""

"""Firmware builds: one module per architecture (host, avr, xtensa) behind one interface,
the arch-neutral core (Firmware, content key, publish, fit check, stack bound), and the other
ways firmware comes in (prebuilt files, PlatformIO projects, Arduino sketches, Optiboot)."""

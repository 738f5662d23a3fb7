"""tinyhil: hardware-in-the-loop test and benchmark harness for TinyML on microcontrollers."""

__version__ = "0.1.0"

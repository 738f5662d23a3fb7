/* Arduino port of the tinyhil DUT runtime: the Arduino API only (Serial, micros(),
 * digitalWrite()), plus the ESP32's CCOUNT cycle counter where the core is the ESP32's. */
#include <Arduino.h>

extern "C" {
#include "tinyhil_port.h"
}

#ifndef TINYHIL_SERIAL
#define TINYHIL_SERIAL Serial
#endif
#ifndef TINYHIL_BAUD
#define TINYHIL_BAUD 115200UL
#endif
#if !defined(TINYHIL_MARKER_PIN) && defined(LED_BUILTIN)
#define TINYHIL_MARKER_PIN LED_BUILTIN
#endif

extern "C" void tinyhil_port_init(void)
{
    TINYHIL_SERIAL.begin(TINYHIL_BAUD);
#ifdef TINYHIL_MARKER_PIN
    pinMode(TINYHIL_MARKER_PIN, OUTPUT);
    digitalWrite(TINYHIL_MARKER_PIN, LOW);
#endif
}

extern "C" uint8_t tinyhil_port_read(void)
{
    int c;
    while ((c = TINYHIL_SERIAL.read()) < 0)
        ;
    return (uint8_t)c;
}

extern "C" void tinyhil_port_write(const uint8_t *data, uint16_t len)
{
    TINYHIL_SERIAL.write(data, len);
}

extern "C" void tinyhil_port_flush(void) { TINYHIL_SERIAL.flush(); }

extern "C" uint32_t tinyhil_port_cycles(void)
{
#if defined(ARDUINO_ARCH_ESP32)
    return ESP.getCycleCount();           /* CCOUNT: CPU cycles */
#else
    return micros();                      /* 1 MHz, in steps of 4 us on a 16 MHz AVR */
#endif
}

extern "C" uint32_t tinyhil_port_timer_hz(void)
{
#if defined(ARDUINO_ARCH_ESP32)
    return getCpuFrequencyMhz() * 1000000UL;
#else
    return 1000000UL;
#endif
}

extern "C" void tinyhil_port_marker(uint8_t on)
{
#ifdef TINYHIL_MARKER_PIN
    digitalWrite(TINYHIL_MARKER_PIN, on ? HIGH : LOW);
#else
    (void)on;
#endif
}

/* tinyhil DUT runtime for Arduino sketches and PlatformIO projects.
 *
 * Link your model through the model ABI (tinyhil_model.h: tinyhil_model_info and
 * tinyhil_model_infer), then either hand the board to the runtime:
 *     void setup() { tinyhil_dut_main(); }      // never returns
 *     void loop() {}
 * or keep your own loop and feed it bytes:
 *     void setup() { tinyhil_dut_init(); }
 *     void loop() { while (Serial.available()) tinyhil_dut_feed(Serial.read()); }
 * The port (port_arduino.cpp) uses Serial, micros() and, on the ESP32, the CPU's cycle counter.
 * Override TINYHIL_SERIAL, TINYHIL_BAUD or TINYHIL_MARKER_PIN with build flags. */
#ifndef TINYHIL_H
#define TINYHIL_H

#ifdef __cplusplus
extern "C" {
#endif
#include "tinyhil_dut.h"
#include "tinyhil_model.h"
#ifdef __cplusplus
}
#endif

#endif

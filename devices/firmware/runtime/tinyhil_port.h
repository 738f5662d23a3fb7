/* What a port (one per architecture) provides to the DUT runtime: a byte link, a cycle
 * counter and a marker pin. Everything else in the runtime is portable C99. */
#ifndef TINYHIL_PORT_H
#define TINYHIL_PORT_H

#include <stdint.h>

void tinyhil_port_init(void);
/* Block until a byte arrives from the host and return it. */
uint8_t tinyhil_port_read(void);
void tinyhil_port_write(const uint8_t *data, uint16_t len);
/* Push out anything the port buffers (called once per frame). */
void tinyhil_port_flush(void);
/* Free-running counter; differences are taken modulo 2^32. */
uint32_t tinyhil_port_cycles(void);
/* Rate of tinyhil_port_cycles() in ticks per second. */
uint32_t tinyhil_port_timer_hz(void);
/* Drive the marker GPIO that gates energy windows: high around the timed loop. */
void tinyhil_port_marker(uint8_t on);

#endif

/* The DUT runtime: wire protocol v1 (docs/protocol.md) on top of a port and a model.
 * Firmware calls tinyhil_dut_init() once and then feeds every received byte to
 * tinyhil_dut_feed(); tinyhil_dut_main() does both for firmware with nothing else to do. */
#ifndef TINYHIL_DUT_H
#define TINYHIL_DUT_H

#include <stdint.h>

void tinyhil_dut_init(void);
void tinyhil_dut_feed(uint8_t byte);
void tinyhil_dut_main(void);

#endif

/* The CRC steps both DUT runtimes use: CRC-8 (poly 0x07, init 0) for frame headers and
 * CRC-16/CCITT-FALSE (poly 0x1021, MSB first) for payloads and EEMBC replies. On AVR,
 * avr-libc's inline-assembly steps compute the same CRCs: the bit loops cost ~100 cycles a
 * byte, more than a byte lasts on an emulator's 2 Mbaud UART. */
#ifndef TINYHIL_CRC_H
#define TINYHIL_CRC_H

#include <stdint.h>

#if defined(__AVR__)
#include <util/crc16.h>
static inline uint8_t crc8_update(uint8_t crc, uint8_t byte) { return _crc8_ccitt_update(crc, byte); }
static inline uint16_t crc16_update(uint16_t crc, uint8_t byte) { return _crc_xmodem_update(crc, byte); }
#else
static inline uint8_t crc8_update(uint8_t crc, uint8_t byte)
{
    crc ^= byte;
    for (uint8_t i = 0; i < 8; i++)
        crc = (crc & 0x80) ? (uint8_t)((crc << 1) ^ 0x07) : (uint8_t)(crc << 1);
    return crc;
}

static inline uint16_t crc16_update(uint16_t crc, uint8_t byte)
{
    crc ^= (uint16_t)byte << 8;
    for (uint8_t i = 0; i < 8; i++)
        crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    return crc;
}
#endif

#endif

/* libFuzzer target: the DUT runtime's frame parser and request dispatch, built for the host
 * with AddressSanitizer and UBSan. Every input is a byte stream as the UART would deliver it;
 * replies go to a sink that checks they are well-formed frames.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *         -I../runtime fuzz_dut_parser.c ../runtime/tinyhil_dut.c -o fuzz_dut_parser
 *   ./fuzz_dut_parser corpus/ -max_total_time=5
 *
 * tests/faults/test_fuzz_parser.py builds and runs it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinyhil_dut.h"
#include "tinyhil_model.h"
#include "tinyhil_port.h"

/* A small model: 40 int8 inputs (two STAGE pieces), one int8 output (their sum), as firmware
 * would link. */
const tinyhil_model_info_t tinyhil_model_info = {
    .id = "fuzz/sum40",
    .input_count = 40,
    .input_dtype = 1,
    .output_count = 1,
    .output_dtype = 1,
    .hash = {1, 2, 3, 4, 5, 6, 7, 8},
};

int tinyhil_model_infer(const void *input, void *output)
{
    const int8_t *in = input;
    int8_t sum = 0;
    for (int i = 0; i < 40; i++)
        sum = (int8_t)(sum + in[i]);
    *(int8_t *)output = sum;
    return 0;
}

/* Port: bytes the DUT sends are collected and checked frame by frame at each flush. */
static uint8_t sent[4096];
static size_t sent_len;
static uint32_t fake_cycles;

void tinyhil_port_init(void) {}
uint8_t tinyhil_port_read(void) { abort(); }   /* the fuzzer feeds bytes itself */
void tinyhil_port_write(const uint8_t *data, uint16_t len)
{
    if (sent_len + len > sizeof sent)
        abort();                                  /* a reply larger than any frame can be */
    memcpy(sent + sent_len, data, len);
    sent_len += len;
}
static uint16_t crc16(uint16_t crc, const uint8_t *p, size_t n)
{
    while (n--) {
        crc ^= (uint16_t)(*p++) << 8;
        for (int i = 0; i < 8; i++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

void tinyhil_port_flush(void)
{
    /* One whole, intact frame per flush: SYNC TYPE SEQ LEN(2) HCRC, LEN bytes, CRC-16, pad. */
    if (sent_len < 9 || sent[0] != 0xA5)
        abort();
    size_t len = (size_t)sent[3] | ((size_t)sent[4] << 8);
    if (sent_len != len + 9 || sent[len + 8] != TINYHIL_PAD)
        abort();
    uint8_t hcrc = 0;
    for (int i = 1; i < 5; i++) {
        hcrc ^= sent[i];
        for (int b = 0; b < 8; b++)
            hcrc = (hcrc & 0x80) ? (uint8_t)((hcrc << 1) ^ 0x07) : (uint8_t)(hcrc << 1);
    }
    uint16_t crc = crc16(crc16(0xFFFF, sent + 1, 4), sent + 6, len);   /* HCRC is outside */
    if (hcrc != sent[5] || crc != (uint16_t)(sent[len + 6] | (sent[len + 7] << 8)))
        abort();
    sent_len = 0;
}
uint32_t tinyhil_port_cycles(void) { return fake_cycles += 7; }
uint32_t tinyhil_port_timer_hz(void) { return 16000000UL; }
void tinyhil_port_marker(uint8_t on) { (void)on; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        tinyhil_dut_init();
        ready = 1;
    }
    for (size_t i = 0; i < size; i++)
        tinyhil_dut_feed(data[i]);
    return 0;
}

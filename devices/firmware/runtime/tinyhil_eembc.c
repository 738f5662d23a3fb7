/* DUT runtime, EEMBC mode: MLPerf Tiny's device protocol (the text protocol of mlcommons/tiny's
 * benchmark/api) on the same port and model as the binary runtime (tinyhil_dut.c); a build
 * links one of the two. Grammar, as the MLPerf Tiny runner speaks it:
 *
 *   commands end in '%', words are separated by spaces; every reply is "\r\n"-ended lines,
 *   the last one "m-ready"; errors are "e-[...]".
 *   name%            m-name-dut-[tinyhil]
 *   profile%         m-profile-[...], m-model-[<variant>], and tinyhil's identity line
 *   timestamp%       m-lap-us-<microseconds of the device's timer>
 *   db load N%       m-[Expecting N bytes]
 *   db <hex>%        bytes appended; m-load-done once N have come
 *   db print%        m-buffer-xx-xx-... (8 bytes a line)
 *   infer N W%       m-warmup-start-W, m-warmup-done, m-infer-start-N, m-lap-us-<a>,
 *                    m-lap-us-<b>, m-infer-done, m-results-[...]
 *   results%         m-results-[...]
 *
 * The two laps are read around the N inferences alone and printed after them, so their
 * difference holds no line printing; the marker pin is high between them (the energy window).
 * Outputs print exactly: integers as decimals; float32 as six decimals for the runner and its
 * bits as hex in an extra m-tinyhil-raw line (the runner ignores lines it does not know).
 * Each reply's last line before m-ready is m-tinyhil-crc-[xxxx], the CRC of the lines before. */
#include <stdint.h>
#include <string.h>

#include "tinyhil_crc.h"
#include "tinyhil_dut.h"
#include "tinyhil_model.h"
#include "tinyhil_port.h"
#include "tinyhil_wire.h"

#ifndef TINYHIL_BOARD_NAME
#define TINYHIL_BOARD_NAME "unknown"
#endif
#ifndef TINYHIL_CLOCK_HZ
#define TINYHIL_CLOCK_HZ 0UL
#endif
#ifndef TINYHIL_VECTOR_CAPACITY
#define TINYHIL_VECTOR_CAPACITY 256
#endif
#ifndef TINYHIL_OUTPUT_CAPACITY
#define TINYHIL_OUTPUT_CAPACITY 64
#endif
#ifndef TINYHIL_BUILD_ID
#define TINYHIL_BUILD_ID 0, 0, 0, 0, 0, 0, 0, 0
#endif
#ifndef TINYHIL_FLAGS
#define TINYHIL_FLAGS 0
#endif

/* 1: only the API's own lines, as another MLPerf Tiny port prints them (no m-tinyhil lines);
 * the harness then drives it as firmware it did not build (tests/protocol/test_eembc.py). */
#ifndef TINYHIL_EEMBC_PLAIN
#define TINYHIL_EEMBC_PLAIN 0
#endif

#define CMD_SIZE 80u            /* the API's EE_CMD_SIZE: "db " and 31 bytes of hex fit */
#define FW_VERSION "ULPMark for tinyML Firmware V0.0.1"

static const uint8_t build_id[8] = {TINYHIL_BUILD_ID};
static uint32_t vector_words[(TINYHIL_VECTOR_CAPACITY + 3) / 4];
static uint32_t output_words[(TINYHIL_OUTPUT_CAPACITY + 3) / 4];
#define VECTOR ((uint8_t *)vector_words)
#define OUTPUT ((uint8_t *)output_words)
static uint16_t load_size, load_pos;
static char command[CMD_SIZE + 1];
static uint8_t command_len;
static uint8_t identified;
static uint8_t have_output;

/* --- printing, without printf (too big for an ATtiny, no float on AVR) ---------------------- */
/* Text in flash on AVR (its RAM would otherwise hold every reply's words): TEXT("...") and
 * SAME(word, "...") keep literals there; put_ram() prints a string in RAM. */
/* Every byte of a reply goes through emit(), which keeps the reply's CRC-16 (CCITT-FALSE): the
 * text protocol has no checksum, so our build ends each reply with m-tinyhil-crc-[xxxx], which
 * the harness checks and the runner ignores. */
static uint16_t reply_crc;


static void emit(const uint8_t *data, uint16_t len)
{
    for (uint16_t i = 0; i < len; i++)
        reply_crc = crc16_update(reply_crc, data[i]);
    tinyhil_port_write(data, len);
}

static void put_ram(const char *text) { emit((const uint8_t *)text, (uint16_t)strlen(text)); }
#if defined(__AVR__)
#include <avr/pgmspace.h>
#define TEXT(s) PSTR(s)
#define SAME(word, s) (strcmp_P((word), PSTR(s)) == 0)
static void put(const char *text)
{
    for (uint8_t c; (c = pgm_read_byte(text)) != 0; text++)
        emit(&c, 1);
}
#else
#define TEXT(s) (s)
#define SAME(word, s) (strcmp((word), (s)) == 0)
static void put(const char *text) { put_ram(text); }
#endif

static void put_u64(uint64_t v)
{
    char digits[21];
    uint8_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        emit((const uint8_t *)&digits[--n], 1);
}

static void put_i32(int32_t v)
{
    if (v < 0) {
        put(TEXT("-"));
        put_u64((uint64_t)(-(int64_t)v));
    } else
        put_u64((uint64_t)v);
}

static void put_hex(uint8_t byte)
{
    static const char hex[] = "0123456789abcdef";
    char pair[2] = {hex[byte >> 4], hex[byte & 15]};
    emit((const uint8_t *)pair, 2);
}

static void end_line(void) { put(TEXT("\r\n")); }

static void line(const char *text)
{
    put(text);
    end_line();
}

/* Six decimals, the MLPerf reference ports' precision; exact bits follow in m-tinyhil-raw. */
static void put_float(float f)
{
    if (f != f) {
        put(TEXT("nan"));
        return;
    }
    if (f < 0) {
        put(TEXT("-"));
        f = -f;
    }
    if (f >= 4294967296.0f) {
        put(TEXT("inf"));
        return;
    }
    uint32_t whole = (uint32_t)f;
    uint32_t micro = (uint32_t)((f - (float)whole) * 1000000.0f + 0.5f);
    if (micro >= 1000000UL) {
        whole++;
        micro -= 1000000UL;
    }
    put_u64(whole);
    put(TEXT("."));
    for (uint32_t scale = 100000UL; scale; scale /= 10)
        put_u64((micro / scale) % 10);
}

/* --- the device's timer in microseconds: the free-running counter, widened to 64 bits ------- */
static uint64_t ticks;
static uint32_t last_read;

static uint32_t clock_advance(void)
{
    uint32_t now = tinyhil_port_cycles(), spent = now - last_read;
    last_read = now;
    ticks += spent;
    return spent;
}

static uint64_t to_us(uint64_t t)
{
    uint32_t hz = tinyhil_port_timer_hz();
    if (hz % 1000000UL == 0)
        return t / (hz / 1000000UL);
    return t * 1000000ULL / hz;
}

static void put_lap(uint64_t t)
{
    put(TEXT("m-lap-us-"));
    put_u64(to_us(t));
    end_line();
}

/* The reply's last lines: our CRC of what came before it (not in a plain build), m-ready. */
static void end_reply(void)
{
    uint16_t crc = reply_crc;
    if (!TINYHIL_EEMBC_PLAIN) {
        put(TEXT("m-tinyhil-crc-["));
        put_hex((uint8_t)(crc >> 8));
        put_hex((uint8_t)crc);
        line(TEXT("]"));
    }
    line(TEXT("m-ready"));
    tinyhil_port_flush();
}

/* --- commands -------------------------------------------------------------------------------- */
static uint32_t parse_u32(const char *text, uint8_t *ok)
{
    uint32_t v = 0;
    *ok = *text != 0;
    for (; *text; text++) {
        if (*text < '0' || *text > '9' || v > 429496728UL) {
            *ok = 0;
            return 0;
        }
        v = v * 10 + (uint32_t)(*text - '0');
    }
    return v;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void profile(void)
{
    const char *model = tinyhil_model_info.id, *slash = strrchr(model, '/');
    line(TEXT("m-profile-[" FW_VERSION "]"));
    put(TEXT("m-model-["));
    put_ram(slash ? slash + 1 : model);     /* the runner keys its tests.yaml by this name */
    line(TEXT("]"));
#if !TINYHIL_EEMBC_PLAIN
    /* tinyhil's identity (the runner ignores it): what IDENTITY carries in binary mode. */
    put(TEXT("m-tinyhil-[board=" TINYHIL_BOARD_NAME ",model="));
    put_ram(model);
    put(TEXT(",hash="));
    for (uint8_t i = 0; i < 8; i++)
        put_hex(tinyhil_model_info.hash[i]);
    put(TEXT(",build="));
    for (uint8_t i = 0; i < 8; i++)
        put_hex(build_id[i]);
    put(TEXT(",clock="));
    put_u64(TINYHIL_CLOCK_HZ);
    put(TEXT(",capacity="));
    put_u64(TINYHIL_VECTOR_CAPACITY);
    put(TEXT(",in="));
    put_u64(tinyhil_model_info.input_count);
    put(TEXT("x"));
    put_u64(tinyhil_model_info.input_dtype);
    put(TEXT(",out="));
    put_u64(tinyhil_model_info.output_count);
    put(TEXT("x"));
    put_u64(tinyhil_model_info.output_dtype);
    put(TEXT(",flags="));
    put_u64(TINYHIL_FLAGS | (identified ? TINYHIL_FLAG_IDENTIFIED_BEFORE : 0));
    line(TEXT("]"));
#endif
    identified = 1;
}

static void results(void)
{
    uint8_t dtype = tinyhil_model_info.output_dtype;
    uint16_t count = tinyhil_model_info.output_count;
    if (!have_output) {
        line(TEXT("e-[No results: run infer first]"));
        return;
    }
    put(TEXT("m-results-["));
    for (uint16_t i = 0; i < count; i++) {
        const uint8_t *at = OUTPUT + (uint32_t)i * tinyhil_dtype_size(dtype);
        if (i)
            put(TEXT(","));
        if (dtype == TINYHIL_DTYPE_FLOAT32) {
            float f;
            memcpy(&f, at, 4);
            put_float(f);
        } else if (dtype == TINYHIL_DTYPE_INT32) {
            int32_t v;
            memcpy(&v, at, 4);
            put_i32(v);
        } else if (dtype == TINYHIL_DTYPE_INT16)
            put_i32((int16_t)(at[0] | (at[1] << 8)));
        else if (dtype == TINYHIL_DTYPE_INT8)
            put_i32((int8_t)at[0]);
        else
            put_u64(at[0]);
    }
    line(TEXT("]"));
    if (dtype == TINYHIL_DTYPE_FLOAT32 && !TINYHIL_EEMBC_PLAIN) {
        put(TEXT("m-tinyhil-raw-["));
        for (uint16_t i = 0; i < 4 * count; i++)
            put_hex(OUTPUT[i]);
        line(TEXT("]"));
    }
}

/* N inferences between two laps. The counter is read every few inferences (at most 64, at most
 * 2^25 ticks apart), so a long window never loses a wrap of the 32-bit counter. */
static void infer(uint32_t n, uint32_t warmup)
{
    if (load_pos != tinyhil_input_bytes() || load_size != tinyhil_input_bytes()) {
        put(TEXT("e-[The model takes "));
        put_u64(tinyhil_input_bytes());
        put(TEXT(" bytes, "));
        put_u64(load_pos);
        line(TEXT(" are loaded: db load it first]"));
        return;
    }
    int failed = 0;
    put(TEXT("m-warmup-start-"));
    put_u64(warmup);
    end_line();
    while (warmup-- && !failed)
        failed = tinyhil_model_infer(VECTOR, OUTPUT);
    line(TEXT("m-warmup-done"));
    put(TEXT("m-infer-start-"));
    put_u64(n);
    end_line();
    tinyhil_port_flush();
    uint32_t chunk = 1, left = n;
    clock_advance();
    uint64_t start = ticks;
    tinyhil_port_marker(1);
    while (left && !failed) {
        uint32_t k = left < chunk ? left : chunk;
        for (uint32_t i = 0; i < k && !failed; i++)
            failed = tinyhil_model_infer(VECTOR, OUTPUT);
        left -= k;
        if (clock_advance() < 0x01000000UL && chunk < 64)
            chunk *= 2;
    }
    tinyhil_port_marker(0);
    uint64_t end = ticks;
    put_lap(start);
    put_lap(end);
    if (failed) {
        line(TEXT("e-[The model failed]"));
        return;
    }
    line(TEXT("m-infer-done"));
    have_output = 1;
    results();
}

static void db(char *sub)
{
    uint8_t ok;
    if (!sub) {
        line(TEXT("e-[Command 'db' requires a subcommand]"));
    } else if (SAME(sub, "load")) {
        char *count = strtok(0, " ");
        uint32_t size = count ? parse_u32(count, &ok) : 0;
        if (!count)
            line(TEXT("e-[Command 'db load' requires the # of bytes]"));
        else if (!ok || size == 0)
            line(TEXT("e-[Command 'db load' must be >0 bytes]"));
        else if (size > TINYHIL_VECTOR_CAPACITY) {
            put(TEXT("e-[Supplied buffer size "));
            put_u64(size);
            put(TEXT(" exceeds maximum of "));
            put_u64(TINYHIL_VECTOR_CAPACITY);
            line(TEXT("]"));
        } else {
            load_size = (uint16_t)size;
            load_pos = 0;
            put(TEXT("m-[Expecting "));
            put_u64(size);
            line(TEXT(" bytes]"));
        }
    } else if (SAME(sub, "print")) {
        for (uint16_t i = 0; i < load_pos; i++) {
            if (i % 8 == 0)
                put(TEXT("m-buffer-"));
            put_hex(VECTOR[i]);
            if ((i + 1) % 8 == 0 || i + 1 == load_pos)
                end_line();
            else
                put(TEXT("-"));
        }
    } else {
        uint16_t digits = (uint16_t)strlen(sub);
        if (digits & 1) {
            line(TEXT("e-[Insufficent number of hex digits]"));
            return;
        }
        for (uint16_t i = 0; i < digits; i += 2) {
            int hi = hex_digit(sub[i]), lo = hex_digit(sub[i + 1]);
            if (hi < 0 || lo < 0) {
                line(TEXT("e-[Invalid hex digit]"));
                return;
            }
            if (load_pos >= load_size) {
                line(TEXT("e-[More bytes than db load announced]"));
                return;
            }
            VECTOR[load_pos++] = (uint8_t)(hi << 4 | lo);
            if (load_pos == load_size) {
                line(TEXT("m-load-done"));
                if (TINYHIL_EEMBC_PLAIN)
                    return;
                /* the buffer's CRC: a digit changed on the link passes the grammar, not this */
                uint16_t crc = 0xFFFF;
                for (uint16_t k = 0; k < load_size; k++)
                    crc = crc16_update(crc, VECTOR[k]);
                put(TEXT("m-tinyhil-load-["));
                put_hex((uint8_t)(crc >> 8));
                put_hex((uint8_t)crc);
                line(TEXT("]"));
                return;          /* the API disregards the remaining digits */
            }
        }
    }
}

static void dispatch(char *text)
{
    char *word = strtok(text, " ");
    uint8_t ok;
    reply_crc = 0xFFFF;
    if (!word) {
        /* an empty command (the runner flushes the line with a bare '%'): only m-ready */
    } else if (SAME(word, "name")) {
        line(TEXT("m-name-dut-[tinyhil]"));
    } else if (SAME(word, "profile")) {
        profile();
    } else if (SAME(word, "timestamp")) {
        clock_advance();
        put_lap(ticks);
    } else if (SAME(word, "db")) {
        db(strtok(0, " "));
    } else if (SAME(word, "infer")) {
        char *n_text = strtok(0, " "), *w_text = n_text ? strtok(0, " ") : 0;
        uint32_t n = n_text ? parse_u32(n_text, &ok) : 1;
        if (n_text && (!ok || n == 0)) {
            line(TEXT("e-[Inference iterations must be >0]"));
        } else {
            uint32_t w = w_text ? parse_u32(w_text, &ok) : 10;   /* the API's default warm-up */
            if (w_text && !ok)
                line(TEXT("e-[Inference warmup must be >=0]"));
            else
                infer(n, w);
        }
    } else if (SAME(word, "results")) {
        results();
    } else if (SAME(word, "help")) {
        line(TEXT(FW_VERSION));
        line(TEXT("name, profile, timestamp, db load N, db HH.., db print, infer N [W=10], results"));
    } else {
        put(TEXT("e-[Unknown command: "));
        put_ram(word);
        line(TEXT("]"));
    }
    end_reply();
}

void tinyhil_dut_feed(uint8_t byte)
{
    if (byte == '%') {
        command[command_len] = 0;
        command_len = 0;
        dispatch(command);
    } else if (byte == '\r' || byte == '\n' || byte == 0) {
        /* line ends between commands are not part of them */
    } else if (command_len < CMD_SIZE) {
        command[command_len++] = (char)byte;
    }
}

void tinyhil_dut_init(void)
{
    tinyhil_port_init();
    tinyhil_port_marker(0);
    last_read = tinyhil_port_cycles();
    reply_crc = 0xFFFF;
    line(TEXT("m-timestamp-mode-performance"));
    line(TEXT("m-init-done"));
    end_reply();
}

void tinyhil_dut_main(void)
{
    tinyhil_dut_init();
    for (;;)
        tinyhil_dut_feed(tinyhil_port_read());
}

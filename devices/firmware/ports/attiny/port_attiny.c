/* ATtiny25/45/85 port. The chip has no UART, so the link is a software UART: 8N1, polled,
 * half duplex, on two port B pins named by the board file ([soft_uart]). The cycle counter is
 * Timer0 at clk/1, 8 bits, extended to 32 bits by its overflow interrupt, whose cost is
 * measured at start-up and taken off, as in port_avr.c. The UART's bits are timed from the
 * same free-running Timer0 (deadlines in cycles from the start bit), so bit timing does not
 * depend on how the compiler schedules the loops. The marker is a third port B pin.
 * (Timer1 is left alone: Debian's simavr 1.6 never raises its overflow flag on the tiny85.)
 *
 * Receiving: tinyhil_port_read() returns right after sampling bit 7, half a bit before the
 * stop bit ends, so the caller has about 1.5 bit times (1250 cycles at 8 MHz, 9600 baud) for
 * its per-byte work before the next start bit of a back-to-back burst. The runtime's parser
 * needs less than that per byte, so LOAD chunks sent back to back by a USB-serial adapter are
 * received whole. A start bit that arrives while the DUT is busy (in an inference, or
 * sending) is lost on hardware: the protocol is request/reply, so the host only sends while
 * the DUT waits, and a lost frame is resent after the reply timeout. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>

#include "tinyhil_port.h"

#ifndef TINYHIL_BAUD
#define TINYHIL_BAUD 9600UL
#endif
#ifndef TINYHIL_TX_BIT               /* the board file's [soft_uart] tx = "B3" */
#define TINYHIL_TX_BIT 3
#endif
#ifndef TINYHIL_RX_BIT               /* rx = "B4" */
#define TINYHIL_RX_BIT 4
#endif
#ifndef TINYHIL_MARKER_PORT
#define TINYHIL_MARKER_PORT PORTB
#define TINYHIL_MARKER_DDR DDRB
#define TINYHIL_MARKER_BIT 1
#endif

#define TX _BV(TINYHIL_TX_BIT)
#define RX _BV(TINYHIL_RX_BIT)

/* CPU cycles per bit, rounded: 8 MHz / 9600 = 833.3 -> 833 (0.04 % slow). */
#define BIT_CYCLES ((F_CPU + TINYHIL_BAUD / 2) / TINYHIL_BAUD)
#if BIT_CYCLES < 200 || BIT_CYCLES > 6000
#error "F_CPU / TINYHIL_BAUD must be 200..6000 cycles per bit: pick another baud in the board file"
#endif

static volatile uint32_t timer_high;
static uint8_t isr_cost;   /* cycles one overflow interrupt takes from the code it interrupts */

ISR(TIMER0_OVF_vect) { timer_high++; }

/* ---- software UART ------------------------------------------------------------------------ */

/* Cycles since a bit clock was started, from TCNT0 differences. Interrupts stay on: the
 * counter's own interrupt may delay an edge or a sample by its ~60 cycles (7 % of a bit),
 * but never the ones after it, because deadlines count from the start bit; reads are never
 * 256 cycles apart, so no wrap of TCNT0 is missed. */
typedef struct {
    uint8_t last;
    uint16_t elapsed;
} bit_clock_t;

static inline void clock_start(bit_clock_t *c)
{
    c->last = TCNT0;
    c->elapsed = 0;
}

static inline void wait_until(bit_clock_t *c, uint16_t deadline)
{
    while (c->elapsed < deadline) {
        uint8_t now = TCNT0;
        c->elapsed += (uint8_t)(now - c->last);
        c->last = now;
    }
}

static void tx_byte(uint8_t b)
{
    bit_clock_t c;
    clock_start(&c);
    PORTB &= (uint8_t)~TX;                  /* start bit */
    uint16_t edge = 0;
    for (uint8_t i = 0; i < 8; i++) {
        wait_until(&c, edge += BIT_CYCLES);
        if (b & 1)
            PORTB |= TX;
        else
            PORTB &= (uint8_t)~TX;
        b >>= 1;
    }
    wait_until(&c, edge += BIT_CYCLES);
    PORTB |= TX;                            /* stop bit */
    wait_until(&c, edge + BIT_CYCLES);
}

uint8_t tinyhil_port_read(void)
{
    for (;;) {
        while (PINB & RX)                   /* idle high: wait for a start bit's edge */
            ;
        bit_clock_t c;
        clock_start(&c);
        uint16_t sample = BIT_CYCLES / 2;
        wait_until(&c, sample);
        if (PINB & RX)
            continue;                       /* a glitch, not a start bit */
        uint8_t b = 0;
        for (uint8_t i = 0; i < 8; i++) {   /* the middle of each data bit */
            wait_until(&c, sample += BIT_CYCLES);
            b >>= 1;
            if (PINB & RX)
                b |= 0x80;
        }
        return b;                           /* no wait for the stop bit: see the top */
    }
}

void tinyhil_port_write(const uint8_t *data, uint16_t len)
{
    while (len--)
        tx_byte(*data++);
}

void tinyhil_port_flush(void) {}

/* ---- cycle counter -------------------------------------------------------------------------- */

/* The counter as the hardware has it: CPU cycles, interrupts included. */
static uint32_t raw_cycles(uint32_t *serviced)
{
    uint8_t sreg = SREG;
    cli();
    uint8_t low = TCNT0;
    uint32_t high = timer_high;
    *serviced = high;
    /* An overflow that happened after cli() has not been counted yet. */
    if ((TIFR & _BV(TOV0)) && low < 0x80)
        high++;
    SREG = sreg;
    return (high << 8) | low;
}

/* n * isr_cost with a loop that depends on isr_cost alone: libgcc's multiply (the ATtiny has
 * no MUL) stops early on small operands, so a counter read would cost more as time goes on. */
static uint32_t times_cost(uint32_t n)
{
    uint32_t sum = 0;
    for (uint8_t bit = 1; bit; bit <<= 1, n <<= 1)
        if (isr_cost & bit)
            sum += n;
    return sum;
}

/* Cycles of a fixed piece of code, placed so that Timer0 overflows inside it or not. */
static uint32_t span_from(uint8_t start)
{
    uint32_t serviced;
    uint8_t sreg = SREG;
    cli();
    TCNT0 = start;
    SREG = sreg;
    uint32_t begin = raw_cycles(&serviced);
    for (volatile uint8_t i = 0; i < 6; i++)
        ;
    return raw_cycles(&serviced) - begin;
}

void tinyhil_port_init(void)
{
    /* A watchdog reset leaves the watchdog running. */
    MCUSR = 0;
    wdt_disable();
    /* TX idles high: set the level before the pin becomes an output, or the host would see a
     * start bit. RX is an input without pull-up: the USB-serial adapter drives it. */
    PORTB |= TX;
    DDRB |= TX;
    DDRB &= (uint8_t)~RX;
    TINYHIL_MARKER_DDR |= _BV(TINYHIL_MARKER_BIT);

    TCCR0A = 0;                             /* Timer0: normal mode, */
    TCCR0B = _BV(CS00);                     /* clk/1: one count per CPU cycle */
    TIMSK |= _BV(TOIE0);
    sei();
    /* An overflow interrupt (one every 256 cycles) inside a timed inference adds its own
     * cycles: measure its cost once, and take it off for every interrupt serviced. */
    uint32_t quiet = span_from(0x08), interrupted = span_from(0xD0);
    isr_cost = interrupted > quiet ? (uint8_t)(interrupted - quiet) : 0;
}

uint32_t tinyhil_port_cycles(void)
{
    uint32_t serviced;
    uint32_t now = raw_cycles(&serviced);
    return now - times_cost(serviced);
}

uint32_t tinyhil_port_timer_hz(void) { return F_CPU; }

void tinyhil_port_marker(uint8_t on)
{
    if (on)
        TINYHIL_MARKER_PORT |= _BV(TINYHIL_MARKER_BIT);
    else
        TINYHIL_MARKER_PORT &= (uint8_t)~_BV(TINYHIL_MARKER_BIT);
}

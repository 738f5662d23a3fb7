/* AVR port (ATmega328P, ATmega2560): UART0 polled, Timer1 at clk/1 extended to 32 bits by
 * its overflow interrupt, the marker on a pin named by the board file. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>

#include "tinyhil_port.h"

#ifndef TINYHIL_BAUD
#define TINYHIL_BAUD 115200UL
#endif
#ifndef TINYHIL_MARKER_PORT
#define TINYHIL_MARKER_PORT PORTB
#define TINYHIL_MARKER_DDR DDRB
#define TINYHIL_MARKER_BIT 5
#endif

static volatile uint16_t timer_high;

static uint8_t isr_cost;   /* cycles one overflow interrupt takes from the code it interrupts */

ISR(TIMER1_OVF_vect) { timer_high++; }

/* The counter as the hardware has it: CPU cycles, interrupts included. */
static uint32_t raw_cycles(uint16_t *serviced)
{
    uint8_t sreg = SREG;
    cli();
    uint16_t low = TCNT1;
    uint16_t high = timer_high;
    *serviced = high;
    /* An overflow that happened after cli() has not been counted yet. */
    if ((TIFR1 & _BV(TOV1)) && low < 0x8000)
        high++;
    SREG = sreg;
    return ((uint32_t)high << 16) | low;
}

/* Cycles of a fixed piece of code, placed so that the timer overflows inside it or not. */
static uint32_t span_from(uint16_t start)
{
    uint16_t serviced;
    uint8_t sreg = SREG;
    cli();
    TCNT1 = start;
    SREG = sreg;
    uint32_t begin = raw_cycles(&serviced);
    for (volatile uint8_t i = 0; i < 24; i++)
        ;
    return raw_cycles(&serviced) - begin;
}

void tinyhil_port_init(void)
{
    /* A bootloader or watchdog reset may leave the watchdog running. */
    MCUSR = 0;
    wdt_disable();
    /* Double speed mode: 115200 baud from 16 MHz is 2.1 % off, as on every Arduino. */
    UCSR0A = _BV(U2X0);
    UBRR0 = (uint16_t)((F_CPU / (8UL * TINYHIL_BAUD)) - 1);
    UCSR0B = _BV(RXEN0) | _BV(TXEN0);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    TCCR1A = 0;
    TCCR1B = _BV(CS10);          /* clk/1: one count per CPU cycle */
    TIMSK1 = _BV(TOIE1);
    TINYHIL_MARKER_DDR |= _BV(TINYHIL_MARKER_BIT);
    sei();
    /* An overflow interrupt landing inside a timed inference would add its own cycles to it,
     * at a phase that depends on when the request arrived: measure its cost once, and take it
     * off for every interrupt serviced, so a figure does not depend on that phase. */
    uint32_t quiet = span_from(0x1000), interrupted = span_from(0xFFC0);
    isr_cost = interrupted > quiet ? (uint8_t)(interrupted - quiet) : 0;
    cli();
    TCNT1 = 0;
    timer_high = 0;
    sei();
}

uint8_t tinyhil_port_read(void)
{
    while (!(UCSR0A & _BV(RXC0)))
        ;
    return UDR0;
}

void tinyhil_port_write(const uint8_t *data, uint16_t len)
{
    while (len--) {
        while (!(UCSR0A & _BV(UDRE0)))
            ;
        UDR0 = *data++;
    }
}

void tinyhil_port_flush(void) {}

uint32_t tinyhil_port_cycles(void)
{
    uint16_t serviced;
    uint32_t now = raw_cycles(&serviced);
    return now - (uint32_t)serviced * isr_cost;
}

uint32_t tinyhil_port_timer_hz(void) { return F_CPU; }

void tinyhil_port_marker(uint8_t on)
{
    if (on)
        TINYHIL_MARKER_PORT |= _BV(TINYHIL_MARKER_BIT);
    else
        TINYHIL_MARKER_PORT &= (uint8_t)~_BV(TINYHIL_MARKER_BIT);
}

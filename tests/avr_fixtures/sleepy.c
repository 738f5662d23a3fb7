/* Test firmware for modelled energy: a marker window that sleeps, and one that spins.
 * avr-gcc -Os -mmcu=atmega328p -DF_CPU=16000000UL sleepy.c -o sleepy.elf
 *
 * Timer2 interrupts every 1600 cycles (clk/8, CTC at 199). On a byte:
 *   's': marker high, a short computation, then TICKS timer ticks asleep (Idle mode, SLEEP
 *        until each interrupt), marker low, reply 'S';
 *   'b': the same, but waits for the ticks spinning on a flag: reply 'B'.
 * Both windows last about as long; the sleeping one spends most of it asleep. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>

#define TICKS 4

static volatile uint8_t ticks;

ISR(TIMER2_COMPA_vect) { ticks++; }

static void compute(void)
{
    volatile uint16_t x = 0;
    for (uint16_t i = 0; i < 200; i++)
        x += i;
}

static void window(uint8_t sleeping)
{
    PORTB |= _BV(PORTB5);
    compute();
    uint8_t start = ticks;
    while ((uint8_t)(ticks - start) < TICKS) {
        if (sleeping) {
            set_sleep_mode(SLEEP_MODE_IDLE);
            sleep_enable();
            sleep_cpu();            /* the Timer2 interrupt wakes it */
            sleep_disable();
        }
    }
    PORTB &= ~_BV(PORTB5);
}

int main(void)
{
    MCUSR = 0;
    wdt_disable();
    DDRB |= _BV(DDB5);
    UCSR0A = _BV(U2X0);
    UBRR0 = 16;
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    UCSR0B = _BV(RXEN0) | _BV(TXEN0);
    TCCR2A = _BV(WGM21);        /* CTC */
    OCR2A = 199;
    TCCR2B = _BV(CS21);         /* clk/8 */
    TIMSK2 = _BV(OCIE2A);
    sei();
    for (;;) {
        while (!(UCSR0A & _BV(RXC0)))
            ;
        uint8_t command = UDR0;
        window(command == 's');
        while (!(UCSR0A & _BV(UDRE0)))
            ;
        UDR0 = command == 's' ? 'S' : 'B';
    }
}

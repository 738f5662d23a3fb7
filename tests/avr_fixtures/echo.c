/* Test firmware for the simavr bridge and the upload path: echoes every byte + 1.
 * avr-gcc -Os -mmcu=atmega328p -DF_CPU=16000000UL echo.c -o echo.elf */
#include <avr/io.h>
#include <avr/wdt.h>

int main(void)
{
    MCUSR = 0;                  /* after Optiboot's watchdog reset, WDRF would keep the dog on */
    wdt_disable();

    DDRB |= _BV(DDB5);
    PORTB |= _BV(PORTB5);       /* marker edges at fixed cycles: rising here ... */

    UCSR0A = _BV(U2X0);         /* 115200 baud at 16 MHz: U2X, UBRR0 = 16 (2.1% off) */
    UBRR0 = 16;
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    UCSR0B = _BV(RXEN0) | _BV(TXEN0);

    PORTB &= ~_BV(PORTB5);      /* ... and falling once the UART is up */

    for (;;) {
        while (!(UCSR0A & _BV(RXC0)))
            ;
        uint8_t b = UDR0;
        while (!(UCSR0A & _BV(UDRE0)))
            ;
        UDR0 = b + 1;
    }
}

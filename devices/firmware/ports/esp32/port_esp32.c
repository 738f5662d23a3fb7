/* ESP32 port, bare metal (no ESP-IDF): UART0 polled through its registers, the CPU's CCOUNT
 * cycle counter, the marker on a GPIO. tinyhil_esp32_start() is what the entry stub calls:
 * it disables the watchdogs and clocks the CPU at 240 MHz from the PLL, as ESP-IDF firmware
 * runs it, so cycle counts are at the clock ESP32 users ship. */
#include <stdint.h>
#include <string.h>

#include "soc_esp32.h"
#include "tinyhil_port.h"

#ifndef TINYHIL_CLOCK_HZ
#define TINYHIL_CLOCK_HZ 240000000UL
#endif
#ifndef TINYHIL_BAUD
#define TINYHIL_BAUD 115200UL
#endif
#ifndef TINYHIL_MARKER_GPIO
#define TINYHIL_MARKER_GPIO 2
#endif
#define APB_HZ 80000000UL   /* APB clock whenever the CPU runs from the PLL */

#if TINYHIL_CLOCK_HZ != 240000000UL
#error "the ESP32 port sets the CPU to 240 MHz; set clock_hz = 240_000_000 in the board file"
#endif

extern char _bss_start[], _bss_end[];
int main(void);

static void watchdogs_off(void)
{
    /* The ROM arms the RTC and TIMG0 watchdogs before it starts the app. */
    static const uint32_t wdt[][2] = {
        {TIMG0_WDTWPROTECT, TIMG0_WDTCONFIG0},
        {TIMG1_WDTWPROTECT, TIMG1_WDTCONFIG0},
        {RTC_WDTWPROTECT, RTC_WDTCONFIG0},
    };
    for (unsigned i = 0; i < sizeof wdt / sizeof wdt[0]; i++) {
        REG(wdt[i][0]) = WDT_WRITE_KEY;
        REG(wdt[i][1]) = 0;
        REG(wdt[i][0]) = 0;
    }
}

static void bbpll_write(uint8_t reg, uint8_t value)
{
    rom_i2c_writeReg(I2C_BBPLL, I2C_BBPLL_HOSTID, reg, value);
}

/* XTAL (40 MHz) -> BBPLL at 480 MHz -> CPU at 240 MHz, APB at 80 MHz: the sequence of
 * ESP-IDF's rtc_clk_cpu_freq_set_config() for a 40 MHz crystal. */
static void cpu_to_240mhz(void)
{
    /* Power up the analog I2C bus and the PLL, then load its reset configuration. */
    REG(RTC_CNTL_OPTIONS0) &= ~(BIAS_I2C_FORCE_PD | BB_I2C_FORCE_PD | BBPLL_FORCE_PD |
                                BBPLL_I2C_FORCE_PD);
    bbpll_write(BBPLL_IR_CAL_DELAY, 0x18);
    bbpll_write(BBPLL_IR_CAL_EXT_CAP, 0x20);
    bbpll_write(BBPLL_OC_ENB_FCAL, 0x9a);
    bbpll_write(BBPLL_OC_ENB_VCON, 0x00);
    bbpll_write(BBPLL_BBADC_CAL_7_0, 0x00);
    /* 240 MHz needs the digital core at 1.25 V. */
    REG(RTC_CNTL_REG) = (REG(RTC_CNTL_REG) & ~(7u << 11)) | (DIG_DBIAS_1V25 << 11);
    ets_delay_us(3);
    /* 480 MHz from 40 MHz: div_ref 0, div 28, dcur 6, bandwidth 3. */
    bbpll_write(BBPLL_ENDIV5, 0xc3);
    bbpll_write(BBPLL_BBADC_DSMP, 0x74);
    bbpll_write(BBPLL_OC_LREF, 0x00);
    bbpll_write(BBPLL_OC_DIV_7_0, 28);
    bbpll_write(BBPLL_OC_DCUR, (3u << 6) | 6u);
    ets_delay_us(80);                          /* PLL lock time with the 150 kHz slow clock */
    /* Let the UART finish what the ROM printed before its clock changes. */
    while ((REG(UART0_STATUS) >> 16) & 0xff)
        ;
    ets_delay_us(200);
    REG(DPORT_CPU_PER_CONF) = 2;               /* CPU = PLL / 2 = 240 MHz */
    REG(SYSCON_PLL_TICK_CONF) = APB_HZ / 1000000UL - 1;
    REG(RTC_CNTL_CLK_CONF) = (REG(RTC_CNTL_CLK_CONF) & ~(3u << 27)) | (1u << 27);
    /* Where ROM routines read the APB frequency, and their delay loop's cycles per us. */
    uint32_t apb = (APB_HZ >> 12) & 0xffff;
    REG(RTC_CNTL_STORE5) = apb | (apb << 16);
    ets_update_cpu_frequency(TINYHIL_CLOCK_HZ / 1000000UL);
    ets_delay_us(30);
}

static void uart_baud(uint32_t apb_hz, uint32_t baud)
{
    uint32_t sixteenths = (uint32_t)(((uint64_t)apb_hz * 16u + baud / 2) / baud);
    REG(UART0_CLKDIV) = ((sixteenths & 15u) << 20) | (sixteenths >> 4);
}

/* IO_MUX register of a GPIO (the table is not linear in the pin number). */
static volatile uint32_t *iomux(unsigned gpio)
{
    switch (gpio) {
    case 2: return &REG(0x3FF49040u);
    case 4: return &REG(0x3FF49048u);
    case 5: return &REG(0x3FF4906Cu);
    case 13: return &REG(0x3FF49038u);
    case 16: return &REG(0x3FF4904Cu);
    case 17: return &REG(0x3FF49050u);
    case 18: return &REG(0x3FF49070u);
    case 19: return &REG(0x3FF49074u);
    case 21: return &REG(0x3FF4907Cu);
    case 22: return &REG(0x3FF49080u);
    case 23: return &REG(0x3FF4908Cu);
    case 25: return &REG(0x3FF49024u);
    case 26: return &REG(0x3FF49028u);
    case 27: return &REG(0x3FF4902Cu);
    default: return 0;
    }
}

void __attribute__((noreturn)) tinyhil_esp32_start(void)
{
    memset(_bss_start, 0, (size_t)(_bss_end - _bss_start));
    watchdogs_off();
    cpu_to_240mhz();
    main();
    for (;;)
        ;
}

void tinyhil_port_init(void)
{
    uart_baud(APB_HZ, TINYHIL_BAUD);
    volatile uint32_t *mux = iomux(TINYHIL_MARKER_GPIO);
    if (mux) {
        *mux = (*mux & ~(7u << 12)) | (2u << 12);          /* MCU_SEL = function 2: GPIO */
        REG(GPIO_FUNC_OUT_SEL(TINYHIL_MARKER_GPIO)) = GPIO_OUT_SIMPLE;
        REG(GPIO_OUT_W1TC) = 1u << TINYHIL_MARKER_GPIO;
        REG(GPIO_ENABLE_W1TS) = 1u << TINYHIL_MARKER_GPIO;
    }
}

uint8_t tinyhil_port_read(void)
{
    while ((REG(UART0_STATUS) & 0xff) == 0)
        ;
    return (uint8_t)REG(UART0_FIFO_DPORT);
}

void tinyhil_port_write(const uint8_t *data, uint16_t len)
{
    while (len--) {
        while (((REG(UART0_STATUS) >> 16) & 0xff) >= UART_FIFO_LEN - 1)
            ;
        REG(UART0_FIFO_AHB) = *data++;
    }
}

void tinyhil_port_flush(void) {}

uint32_t tinyhil_port_cycles(void)
{
    uint32_t count;
    __asm__ volatile("rsr %0, ccount" : "=r"(count));
    return count;
}

uint32_t tinyhil_port_timer_hz(void) { return TINYHIL_CLOCK_HZ; }

void tinyhil_port_marker(uint8_t on)
{
    if (on)
        REG(GPIO_OUT_W1TS) = 1u << TINYHIL_MARKER_GPIO;
    else
        REG(GPIO_OUT_W1TC) = 1u << TINYHIL_MARKER_GPIO;
}

/* The few ESP32 registers and ROM routines the bare-metal port uses (ESP32 Technical
 * Reference Manual; ROM addresses in esp32.ld). */
#ifndef TINYHIL_SOC_ESP32_H
#define TINYHIL_SOC_ESP32_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))

/* UART0: read the FIFO through the DPORT bus, write it through AHB, as ESP-IDF does. */
#define UART0_FIFO_DPORT   0x3FF40000u
#define UART0_FIFO_AHB     0x60000000u
#define UART0_CLKDIV       0x3FF40014u   /* [19:0] integer, [23:20] sixteenths */
#define UART0_STATUS       0x3FF4001Cu   /* [7:0] bytes in RX FIFO, [23:16] bytes in TX FIFO */
#define UART_FIFO_LEN      128u

/* Watchdogs: each has a write-protect register that takes this key. */
#define WDT_WRITE_KEY      0x50D83AA1u
#define TIMG0_WDTCONFIG0   0x3FF5F048u
#define TIMG0_WDTWPROTECT  0x3FF5F064u
#define TIMG1_WDTCONFIG0   0x3FF60048u
#define TIMG1_WDTWPROTECT  0x3FF60064u
#define RTC_WDTCONFIG0     0x3FF4808Cu
#define RTC_WDTWPROTECT    0x3FF480A4u

/* Clocks (RTC_CNTL, DPORT, SYSCON). */
#define RTC_CNTL_OPTIONS0  0x3FF48000u
#define  BB_I2C_FORCE_PD      (1u << 6)
#define  BBPLL_I2C_FORCE_PD   (1u << 8)
#define  BBPLL_FORCE_PD       (1u << 10)
#define  BIAS_I2C_FORCE_PD    (1u << 18)
#define RTC_CNTL_CLK_CONF  0x3FF48070u   /* SOC_CLK_SEL [28:27]: 0 XTAL, 1 PLL */
#define RTC_CNTL_REG       0x3FF4807Cu   /* DIG_DBIAS_WAK [13:11]: core voltage */
#define  DIG_DBIAS_1V25       7u
#define RTC_CNTL_STORE5    0x3FF480B4u   /* APB frequency >> 12, twice: what ROM code reads */
#define DPORT_CPU_PER_CONF 0x3FF0003Cu   /* CPUPERIOD_SEL [1:0]: 0 80 MHz, 1 160 MHz, 2 240 MHz */
#define SYSCON_PLL_TICK_CONF 0x3FF66008u /* REF_TICK divider from the 80 MHz APB clock */

/* Analog configuration bus (BBPLL), written through the ROM. */
#define I2C_BBPLL            0x66
#define I2C_BBPLL_HOSTID     4
#define BBPLL_IR_CAL_DELAY   0
#define BBPLL_IR_CAL_EXT_CAP 1
#define BBPLL_OC_LREF        2
#define BBPLL_OC_DIV_7_0     3
#define BBPLL_OC_ENB_FCAL    4
#define BBPLL_OC_DCUR        5
#define BBPLL_BBADC_DSMP     9
#define BBPLL_OC_ENB_VCON    10
#define BBPLL_ENDIV5         11
#define BBPLL_BBADC_CAL_7_0  12

/* GPIO (marker pin). */
#define GPIO_OUT_W1TS      0x3FF44008u
#define GPIO_OUT_W1TC      0x3FF4400Cu
#define GPIO_ENABLE_W1TS   0x3FF44024u
#define GPIO_FUNC_OUT_SEL(n) (0x3FF44530u + 4u * (n))
#define GPIO_OUT_SIMPLE    0x100u        /* output driven by GPIO_OUT, not a peripheral */

void ets_delay_us(uint32_t us);
void ets_update_cpu_frequency(uint32_t ticks_per_us);
uint8_t rom_i2c_writeReg(uint8_t block, uint8_t host_id, uint8_t reg, uint8_t data);

#endif

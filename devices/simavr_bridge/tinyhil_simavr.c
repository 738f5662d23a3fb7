/*
 * tinyhil-simavr: run an AVR in simavr with UART0 on a pseudo-terminal.
 *
 *   tinyhil-simavr --mcu atmega328p --freq 16000000 [--marker B5] [--marker-log FILE]
 *                  [--bootloader boot.hex --boot-addr 0x7E00] [--reset-on-open]
 *                  [--realtime] [--settle-ms N]
 *                  [--soft-uart-tx B3 --soft-uart-rx B4 --baud 9600] [firmware.elf]
 *
 * Prints one line "PTY <slave path>" on stdout, then holds the CPU until the host opens
 * that path, so the host never misses the DUT's first bytes. UART0 is bridged both ways
 * with simavr's XON/XOFF signals, so no byte is dropped. Marker pin edges are logged as
 * "<level> <cycle>" lines; while the marker is high, the CPU going to sleep and waking up are
 * logged too, as "S <cycle> <SMCR sleep mode>" and "W <cycle>", so that an energy model can
 * tell cycles running from cycles asleep inside the window. SIGUSR1 resets the MCU (external reset); SIGTERM/SIGINT exit 0.
 * A crashed core prints "CRASHED pc=0x.. cycle=.." on stderr and exits 2.
 *
 * With --soft-uart-tx/--soft-uart-rx (an MCU without a UART, e.g. the ATtiny85 and its
 * bit-banged 8N1 link), the pty is bridged to two pins instead of UART0, at cycle level: TX pin
 * edges are decoded into bytes (sampled at the middle of each bit, from the start bit's
 * falling edge), and host bytes are driven onto the RX pin bit by bit at --baud. A polled
 * soft UART is half duplex and sees a start bit only while it polls, so host bytes wait in
 * the bridge until the DUT is not transmitting and is polling the RX pin (it read the pin's
 * PIN register within the last POLL_WINDOW cycles); queued bytes then go back to back with
 * one stop bit, as a USB-serial adapter sends them. A start bit the DUT has not polled for
 * a quarter bit after its edge (it is busy: running a request it has whole, or too slow per
 * byte) is taken back unseen and the bytes wait for its next poll; stderr says "HELD", since
 * on hardware that byte would be lost: a firmware too slow for a burst shows up, it is not
 * hidden. Bytes from the DUT with a bad stop bit are counted on stderr and dropped.
 *
 * Build: cc -O2 -I/usr/include/simavr tinyhil_simavr.c -lsimavr -lelf -lpthread -lutil
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sim_avr.h>
#include <sim_elf.h>
#include <sim_hex.h>
#include <sim_irq.h>
#include <avr_ioport.h>
#include <avr_uart.h>
#include <avr_watchdog.h>

#define BATCH 2000          /* instructions between two looks at the pty (~125 us at 16 MHz) */
#define OUTQ_SIZE 65536     /* AVR -> host bytes waiting for the host to read them */
#define INQ_SIZE 4096       /* host -> AVR bytes waiting for room in the UART */

static avr_t *avr;
static int master = -1;
static volatile sig_atomic_t stop_requested, reset_requested;

static struct {
    const char *mcu, *firmware, *bootloader, *marker_log;
    uint32_t freq, boot_addr;
    char marker_port;
    int marker_bit, reset_on_open, realtime, settle_ms;
    char tx_port, rx_port;      /* soft UART pins; 0: UART0 mode */
    int tx_bit, rx_bit;
    uint32_t baud;
} opt = { .mcu = "atmega328p", .freq = 16000000, .marker_bit = -1, .settle_ms = 50,
          .baud = 9600 };

/* Byte queues: plain rings, one producer and one consumer on the same thread. */
static uint8_t outq[OUTQ_SIZE], inq[INQ_SIZE];
static size_t out_head, out_len, in_head, in_len;

static int connected;          /* a host has the slave open */
static int cpu_started;        /* the CPU is held until the first host open */
static int uart_accepts;       /* UART said XON and not XOFF since: safe to push a byte */
static unsigned xon_polls;     /* XONs seen in this batch: the firmware is polling an empty UART */
static avr_irq_t *uart_input;
static FILE *marker_file;
static int marker_level;
static void (*core_reset)(avr_t *);

static uint64_t anchor_cycle;  /* realtime pacing: simulated cycle and wall time at the anchor */
static double anchor_wall;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tinyhil-simavr: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* simavr logs some levels on stdout; our stdout carries only the PTY line. */
static void logger(avr_t *a, const int level, const char *fmt, va_list ap)
{
    if (!a || a->log >= level)
        vfprintf(stderr, fmt, ap);
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        reset_requested = 1;
    else
        stop_requested = 1;
}

static void anchor_time(void)
{
    anchor_cycle = avr->cycle;
    anchor_wall = now();
}

/* ---- UART0 <-> queues --------------------------------------------------------------- */

static void on_uart_output(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq; (void)param;
    if (!connected)             /* nobody listening: a real board's bytes are lost too */
        return;
    if (out_len < OUTQ_SIZE) {
        outq[(out_head + out_len) % OUTQ_SIZE] = (uint8_t)value;
        out_len++;
    }   /* the main loop stops running the CPU before the queue can fill */
}

static void on_uart_xon(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq; (void)param;
    if (value) {
        uart_accepts = 1;
        xon_polls++;
    }
}

static void on_uart_xoff(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq; (void)param;
    if (value)
        uart_accepts = 0;
}

/* Push queued host bytes while the UART has room; XOFF arrives inside avr_raise_irq. */
static void feed_uart(void)
{
    while (in_len && uart_accepts) {
        uint8_t b = inq[in_head];
        in_head = (in_head + 1) % INQ_SIZE;
        in_len--;
        avr_raise_irq(uart_input, b);
    }
}

/* ---- software UART on two pins (--soft-uart-tx/--soft-uart-rx) ---------------------------- */

static void take_host_byte(avr_cycle_count_t start);
static avr_cycle_count_t rx_next_bit(avr_t *a, avr_cycle_count_t when, void *param);

#define POLL_WINDOW 200         /* cycles: a PIN read this recent means the DUT polls RX */
static avr_irq_t *rx_pin;
static int tx_level;            /* TX as last seen; 0 until the firmware drives it high */
static int tx_busy, tx_bit_index;
static uint8_t tx_shift;
static unsigned tx_framing_errors, rx_held;
static int rx_busy, rx_bit_index;
static uint8_t rx_byte;
static avr_cycle_count_t rx_start, tx_start, last_rx_poll;
static int rx_polled;           /* the DUT has read RX since the bridge (re)started */
static avr_io_read_t pin_read;  /* the ioport's own PIN read handler, which ours wraps */
static void *pin_read_param;

/* Cycle at which bit `k` (0 = start bit) of a byte starting at `start` begins: exact to a
 * cycle over the frame, whatever the ratio of clock and baud. */
static avr_cycle_count_t bit_edge(avr_cycle_count_t start, double k)
{
    return start + (avr_cycle_count_t)(k * opt.freq / opt.baud + 0.5);
}

static avr_cycle_count_t tx_sample(avr_t *a, avr_cycle_count_t when, void *param)
{
    (void)a; (void)when; (void)param;
    if (tx_bit_index < 8) {     /* the middle of data bit tx_bit_index */
        tx_shift = (uint8_t)((tx_shift >> 1) | (tx_level ? 0x80 : 0));
        tx_bit_index++;
        return bit_edge(tx_start, tx_bit_index + 1.5);
    }
    tx_busy = 0;                /* the middle of the stop bit */
    if (!tx_level)
        tx_framing_errors++;
    else if (connected && out_len < OUTQ_SIZE) {
        outq[(out_head + out_len) % OUTQ_SIZE] = tx_shift;
        out_len++;
    }
    return 0;
}

static void on_tx_pin(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq; (void)param;
    int level = value ? 1 : 0;
    if (level == tx_level)
        return;
    tx_level = level;
    if (!level && !tx_busy) {   /* a start bit: sample bit 0 one and a half bits later */
        tx_busy = 1;
        tx_bit_index = 0;
        tx_shift = 0;
        tx_start = avr->cycle;
        avr_cycle_timer_register(avr, bit_edge(0, 1.5), tx_sample, NULL);
    }
}

/* Drive the next bit boundary of the byte on RX; at the end of its stop bit, go straight on
 * with the next queued byte. */
static avr_cycle_count_t rx_next_bit(avr_t *a, avr_cycle_count_t when, void *param)
{
    (void)a; (void)param;
    rx_bit_index++;
    if (rx_bit_index <= 8) {
        avr_raise_irq(rx_pin, (rx_byte >> (rx_bit_index - 1)) & 1);
    } else if (rx_bit_index == 9) {
        avr_raise_irq(rx_pin, 1);                   /* stop bit */
    } else if (in_len) {
        take_host_byte(when);                       /* back to back, like an adapter */
        return bit_edge(rx_start, 1);
    } else {
        rx_busy = 0;
        return 0;
    }
    return bit_edge(rx_start, rx_bit_index + 1);
}

/* A quarter bit into a start bit: a DUT that has not polled RX since the edge would miss the
 * byte (or sample it too late) on hardware. Take the start bit back, unseen, and keep the
 * byte until the DUT polls: it was busy (in a request it has whole, or too slow per byte). */
static avr_cycle_count_t rx_check_start(avr_t *a, avr_cycle_count_t when, void *param)
{
    (void)when; (void)param;
    if (rx_busy && rx_bit_index == 0 && last_rx_poll < rx_start) {
        avr_cycle_timer_cancel(a, rx_next_bit, NULL);
        avr_raise_irq(rx_pin, 1);
        in_head = (in_head + INQ_SIZE - 1) % INQ_SIZE;
        in_len++;
        rx_busy = 0;
        rx_held++;
        fprintf(stderr, "tinyhil-simavr: HELD host bytes at cycle %llu: the DUT was not polling "
                "RX a quarter bit into a start bit (on hardware the byte would be lost)\n",
                (unsigned long long)a->cycle);
    }
    return 0;
}

static void take_host_byte(avr_cycle_count_t start)
{
    rx_byte = inq[in_head];
    in_head = (in_head + 1) % INQ_SIZE;
    in_len--;
    rx_busy = 1;
    rx_bit_index = 0;
    rx_start = start;
    avr_raise_irq(rx_pin, 0);                       /* start bit */
    avr_cycle_timer_register(avr, bit_edge(start, 0.25) - avr->cycle, rx_check_start, NULL);
}

/* Start a burst of host bytes only while the DUT waits for one: see the top of the file. */
static void feed_soft_uart(void)
{
    if (in_len && !rx_busy && !tx_busy && tx_level && rx_polled &&
        avr->cycle - last_rx_poll < POLL_WINDOW) {
        take_host_byte(avr->cycle);
        avr_cycle_timer_register(avr, bit_edge(0, 1), rx_next_bit, NULL);
    }
}

static uint8_t on_rx_pin_read(avr_t *a, avr_io_addr_t addr, void *param)
{
    (void)param;
    last_rx_poll = a->cycle;
    rx_polled = 1;
    xon_polls++;                /* idle detection: the DUT spins on an empty line */
    return pin_read ? pin_read(a, addr, pin_read_param) : a->data[addr];
}

/* After any reset: the line idles high again and nothing is in flight. */
static void reset_soft_uart(void)
{
    avr_cycle_timer_cancel(avr, tx_sample, NULL);
    avr_cycle_timer_cancel(avr, rx_next_bit, NULL);
    avr_cycle_timer_cancel(avr, rx_check_start, NULL);
    tx_busy = rx_busy = 0;
    tx_level = 0;
    rx_polled = 0;
    avr_raise_irq(rx_pin, 0);   /* the reset cleared PIN; the IRQ only passes changes */
    avr_raise_irq(rx_pin, 1);
}

static avr_ioport_t *find_port(char name)
{
    for (avr_io_t *io = avr->io_port; io; io = io->next)
        if (io->kind && strcmp(io->kind, "port") == 0 && ((avr_ioport_t *)io)->name == name)
            return (avr_ioport_t *)io;
    return NULL;
}

static void connect_soft_uart(void)
{
    avr_irq_t *tx = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(opt.tx_port), opt.tx_bit);
    rx_pin = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(opt.rx_port), opt.rx_bit);
    avr_ioport_t *rx_ioport = find_port(opt.rx_port);
    if (!tx || !rx_pin || !rx_ioport)
        die("%s has no port %c or %c for the soft UART", opt.mcu, opt.tx_port, opt.rx_port);
    avr_irq_register_notify(tx, on_tx_pin, NULL);
    /* Wrap the PIN register's read handler: a read is the DUT polling for a start bit. */
    int io = AVR_DATA_TO_IO(rx_ioport->r_pin);
    pin_read = avr->io[io].r.c;
    pin_read_param = avr->io[io].r.param;
    avr->io[io].r.c = on_rx_pin_read;
    avr->io[io].r.param = NULL;
    reset_soft_uart();
}

/* ---- marker pin ----------------------------------------------------------------------- */

/* SMCR, the sleep mode control register: data address 0x53 on the ATmega48..328 and
 * ATmega640..2561 families; its SM2:0 bits (3:1) name the mode a SLEEP enters. */
#define SMCR_ADDR 0x53
/* The ATtiny25/45/85 keep SM1:0 in MCUCR (0x55) bits 4:3, with the same codes for idle (0),
 * ADC noise reduction (1) and power-down (2). */
#define MCUCR_TINYX5 0x55
static int cpu_asleep, sleep_logged;

static int sleep_mode(avr_t *a)
{
    if (strncmp(opt.mcu, "attiny", 6) == 0 && strchr("248", opt.mcu[6]) && opt.mcu[7] == '5')
        return (a->data[MCUCR_TINYX5] >> 3) & 3;
    return (a->data[SMCR_ADDR] >> 1) & 7;
}
static avr_cycle_count_t sleep_end;

/* simavr calls avr->sleep when the CPU sleeps, with the cycles until the next timer event,
 * then adds 1 + that to the cycle counter in one step, and wakes the CPU at once if an
 * interrupt is then pending; otherwise it sleeps on in the next call. So a sleep starts at
 * the first call and ends where the last call's step ends. */
static void on_sleep(avr_t *a, avr_cycle_count_t how_long)
{
    if (!cpu_asleep) {
        cpu_asleep = 1;
        sleep_logged = marker_file && marker_level;   /* only the window matters */
        if (sleep_logged) {
            fprintf(marker_file, "S %llu %d\n", (unsigned long long)a->cycle, sleep_mode(a));
            fflush(marker_file);
        }
    }
    sleep_end = a->cycle + 1 + how_long;
}

/* After each instruction step: log the wake-up of a sleep that began in the window. */
static void note_wake(void)
{
    if (!cpu_asleep || avr->state == cpu_Sleeping)
        return;
    cpu_asleep = 0;
    if (sleep_logged) {
        fprintf(marker_file, "W %llu\n", (unsigned long long)sleep_end);
        fflush(marker_file);
    }
}

static void log_marker(int level)
{
    if (level == marker_level)
        return;                 /* the pin IRQ fires on every port write, not only on edges */
    marker_level = level;
    if (marker_file) {
        fprintf(marker_file, "%d %llu\n", level, (unsigned long long)avr->cycle);
        fflush(marker_file);
    }
}

static void on_marker(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq; (void)param;
    log_marker(value ? 1 : 0);
}

/* ---- resets --------------------------------------------------------------------------- */

/* Runs inside every avr_reset(), the watchdog's included: RXEN is cleared, so stop feeding
 * until the firmware enables the receiver again (bytes pushed now would vanish). */
static void on_any_reset(avr_t *a)
{
    if (core_reset)
        core_reset(a);
    uart_accepts = 0;
    if (rx_pin)
        reset_soft_uart();
    log_marker(0);              /* a reset makes every pin an input */
}

/* What the RESET pin (an Arduino's DTR pulse) does: EXTRF keeps Optiboot in the bootloader. */
static void external_reset(void)
{
    avr_reset(avr);             /* starts at avr->reset_pc: the BOOTRST fuse */
    avr_regbit_set(avr, avr->reset_flags.extrf);
    in_head = in_len = 0;       /* bytes meant for the previous session */
    anchor_time();
}

/* simavr 1.6 (and later, so far) computes a new watchdog timeout when the prescaler changes
 * but leaves the pending timeout where it was: Optiboot's "16 ms, then reset" became the old
 * 1 s. Restarting the timeout after each WDTCSR write applies the new period; every user of
 * the watchdog (Optiboot, avr-libc's wdt_enable) has just done a wdr anyway. */
static avr_watchdog_t *watchdog;

static void on_wdtcsr_write(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq; (void)value; (void)param;
    if (avr_regbit_get(avr, watchdog->wde) || avr_regbit_get(avr, watchdog->watchdog.enable))
        avr_ioctl(avr, AVR_IOCTL_WATCHDOG_RESET, NULL);
}

static void fix_watchdog(void)
{
    for (avr_io_t *io = avr->io_port; io; io = io->next)
        if (io->kind && strcmp(io->kind, "watchdog") == 0)
            watchdog = (avr_watchdog_t *)io;
    if (watchdog && watchdog->wde.reg)
        avr_irq_register_notify(avr_iomem_getirq(avr, watchdog->wde.reg, NULL, AVR_IOMEM_IRQ_ALL),
                                on_wdtcsr_write, NULL);
}

/* ---- pty -------------------------------------------------------------------------------- */

/* Host opens and closes of the slave, from inotify: every open and close is queued as an
 * event, so an avrdude close followed at once by a pyserial open is still seen as two. */
static int watch_fd = -1;
static int host_opens;          /* opens minus closes of the slave by the host */

static void watch_opens(const char *slave)
{
    watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch_fd >= 0 && inotify_add_watch(watch_fd, slave, IN_OPEN | IN_CLOSE) < 0) {
        close(watch_fd);
        watch_fd = -1;          /* fall back to sampling POLLHUP on the master */
    }
}

static const char *open_pty(void)
{
    master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        die("cannot create a pseudo-terminal: %s", strerror(errno));
    const char *slave = ptsname(master);
    if (!slave)
        die("ptsname: %s", strerror(errno));

    /* Raw from the start: no echo of host bytes back to the host, no CR/LF rewriting
     * in the moment between the host's open() and its own tcsetattr(). */
    struct termios tio;
    if (tcgetattr(master, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(master, TCSANOW, &tio);
    }
    /* A fresh master does not report POLLHUP until a slave has been opened and closed
     * once: do that, so "no POLLHUP" means "the host has the port open" (the fallback when
     * inotify is unavailable). Before the watch, so it is not counted as a host open. */
    int fd = open(slave, O_RDWR | O_NOCTTY);
    if (fd >= 0)
        close(fd);
    watch_opens(slave);
    return slave;
}

static void on_connect(void)
{
    fprintf(stderr, "tinyhil-simavr: host opened the port at cycle %llu\n",
            (unsigned long long)avr->cycle);
    connected = 1;
    out_head = out_len = 0;
    /* Let the host finish configuring the port (pyserial flushes its input right after
     * open()) before the DUT may speak. */
    if (opt.settle_ms > 0)
        usleep(opt.settle_ms * 1000);
    if (opt.reset_on_open) {
        external_reset();
    } else if (!cpu_started) {
        in_head = in_len = 0;
        anchor_time();
    }
    cpu_started = 1;
}

static void on_disconnect(void)
{
    fprintf(stderr, "tinyhil-simavr: host closed the port at cycle %llu\n",
            (unsigned long long)avr->cycle);
    if (tx_framing_errors)
        fprintf(stderr, "tinyhil-simavr: %u soft-UART bytes from the DUT had no stop bit\n",
                tx_framing_errors);
    connected = 0;
    out_head = out_len = 0;     /* nobody will read them */
}

static void read_open_events(void)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(watch_fd, buf, sizeof buf)) > 0) {
        for (char *q = buf; q < buf + n; q += sizeof(struct inotify_event)
                                              + ((struct inotify_event *)q)->len) {
            uint32_t mask = ((struct inotify_event *)q)->mask;
            if ((mask & IN_OPEN) && host_opens++ == 0)
                on_connect();
            if ((mask & IN_CLOSE) && host_opens > 0 && --host_opens == 0)
                on_disconnect();
        }
    }
}

/* Look at the pty once: connection changes, host bytes in, AVR bytes out. */
static void service_pty(int timeout_ms)
{
    struct pollfd p[2] = {
        { .fd = master, .events = POLLIN | (out_len ? POLLOUT : 0) },
        { .fd = watch_fd, .events = POLLIN },
    };
    if (watch_fd >= 0 && !connected)
        p[0].fd = -1;           /* a closed slave makes the master poll ready at once */
    if (poll(p, 2, timeout_ms) < 0) {
        if (errno == EINTR)
            return;
        die("poll: %s", strerror(errno));
    }
    if (watch_fd >= 0) {
        read_open_events();
    } else {
        int hup = (p[0].revents & POLLHUP) != 0;
        if (hup && connected)
            on_disconnect();
        else if (!hup && !connected)
            on_connect();
    }
    if (!connected)
        return;

    /* Read only what the queue can hold: the rest waits in the kernel, which in turn
     * makes the host's write() wait. That is the flow control towards the host. */
    while (in_len < INQ_SIZE) {
        size_t tail = (in_head + in_len) % INQ_SIZE;
        size_t room = tail >= in_head ? INQ_SIZE - tail : in_head - tail;
        if (room > INQ_SIZE - in_len)
            room = INQ_SIZE - in_len;
        ssize_t n = read(master, inq + tail, room);
        if (n <= 0)
            break;              /* EAGAIN, or EIO while the slave closes */
        in_len += n;
    }
    while (out_len) {
        size_t chunk = out_len;
        if (out_head + chunk > OUTQ_SIZE)
            chunk = OUTQ_SIZE - out_head;
        ssize_t n = write(master, outq + out_head, chunk);
        if (n <= 0)
            break;              /* host not reading: keep the bytes, try again later */
        out_head = (out_head + n) % OUTQ_SIZE;
        out_len -= n;
    }
}

/* ---- setup -------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
        "usage: tinyhil-simavr --mcu NAME --freq HZ [--marker B5] [--marker-log FILE]\n"
        "       [--bootloader boot.hex --boot-addr 0x7E00] [--reset-on-open] [--realtime]\n"
        "       [--settle-ms N] [--soft-uart-tx B3 --soft-uart-rx B4 --baud 9600]\n"
        "       [firmware.elf]\n");
    exit(1);
}

static void parse_pin(const char *flag, const char *arg, char *port, int *bit)
{
    if (strlen(arg) != 2 || arg[0] < 'A' || arg[0] > 'L' || arg[1] < '0' || arg[1] > '7')
        die("%s wants a port letter and a bit, like B5, not %s", flag, arg);
    *port = arg[0];
    *bit = arg[1] - '0';
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "mcu", required_argument, 0, 'm' },
        { "freq", required_argument, 0, 'f' },
        { "marker", required_argument, 0, 'k' },
        { "marker-log", required_argument, 0, 'l' },
        { "bootloader", required_argument, 0, 'b' },
        { "boot-addr", required_argument, 0, 'a' },
        { "reset-on-open", no_argument, 0, 'r' },
        { "realtime", no_argument, 0, 't' },
        { "settle-ms", required_argument, 0, 's' },
        { "soft-uart-tx", required_argument, 0, 'T' },
        { "soft-uart-rx", required_argument, 0, 'R' },
        { "baud", required_argument, 0, 'B' },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': opt.mcu = optarg; break;
        case 'f': opt.freq = strtoul(optarg, NULL, 0); break;
        case 'k': parse_pin("--marker", optarg, &opt.marker_port, &opt.marker_bit); break;
        case 'T': parse_pin("--soft-uart-tx", optarg, &opt.tx_port, &opt.tx_bit); break;
        case 'R': parse_pin("--soft-uart-rx", optarg, &opt.rx_port, &opt.rx_bit); break;
        case 'B': opt.baud = strtoul(optarg, NULL, 0); break;
        case 'l': opt.marker_log = optarg; break;
        case 'b': opt.bootloader = optarg; break;
        case 'a': opt.boot_addr = strtoul(optarg, NULL, 0); break;
        case 'r': opt.reset_on_open = 1; break;
        case 't': opt.realtime = 1; break;
        case 's': opt.settle_ms = atoi(optarg); break;
        default: usage();
        }
    }
    if (optind < argc)
        opt.firmware = argv[optind++];
    if (optind < argc || (!opt.firmware && !opt.bootloader) || !opt.freq)
        usage();
    if (!opt.tx_port != !opt.rx_port)
        die("a soft UART needs both --soft-uart-tx and --soft-uart-rx");
    if (opt.tx_port && (opt.baud < 300 || opt.baud > opt.freq / 16))
        die("--baud %u is out of range for a %u Hz clock", opt.baud, opt.freq);
}

static void load_code(void)
{
    if (opt.firmware) {
        elf_firmware_t fw;
        memset(&fw, 0, sizeof fw);
        if (elf_read_firmware(opt.firmware, &fw) != 0 || fw.flashsize == 0)
            die("cannot read firmware ELF %s", opt.firmware);
        avr_load_firmware(avr, &fw);
    }
    if (opt.bootloader) {
        ihex_chunk_p chunks = NULL;
        int count = read_ihex_chunks(opt.bootloader, &chunks);
        if (count <= 0)
            die("cannot read bootloader hex %s", opt.bootloader);
        for (int i = 0; i < count; i++) {
            if (chunks[i].baseaddr + chunks[i].size > avr->flashend + 1)
                die("bootloader %s reaches past the end of flash", opt.bootloader);
            avr_loadcode(avr, chunks[i].data, chunks[i].size, chunks[i].baseaddr);
        }
        free_ihex_chunks(chunks);
        avr->codeend = avr->flashend;   /* the bootloader lies beyond the app's code */
        avr->reset_pc = opt.boot_addr;  /* BOOTRST: every reset starts in the bootloader */
        avr->pc = opt.boot_addr;
    }
    avr->frequency = opt.freq;          /* the board's clock, not the ELF's .mmcu note */
}

static void connect_uart0(void)
{
    uint32_t flags = 0;
    /* Poll sleep usleep()s on idle UART polls (unpredictable timing); STDIO prints the
     * AVR's lines on our stdout, which carries only the PTY line. */
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~(AVR_UART_FLAG_POLL_SLEEP | AVR_UART_FLAG_STDIO);
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);

    uart_input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_t *out = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT);
    avr_irq_t *xon = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON);
    avr_irq_t *xoff = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF);
    if (!uart_input || !out || !xon || !xoff)
        die("%s has no UART0", opt.mcu);
    avr_irq_register_notify(out, on_uart_output, NULL);
    avr_irq_register_notify(xon, on_uart_xon, NULL);
    avr_irq_register_notify(xoff, on_uart_xoff, NULL);
}

static void connect_parts(void)
{
    if (opt.tx_port)
        connect_soft_uart();
    else
        connect_uart0();

    if (opt.marker_bit >= 0) {
        avr_irq_t *pin = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(opt.marker_port),
                                       opt.marker_bit);
        if (!pin)
            die("%s has no port %c", opt.mcu, opt.marker_port);
        avr_irq_register_notify(pin, on_marker, NULL);
        if (opt.marker_log && !(marker_file = fopen(opt.marker_log, "w")))
            die("cannot write marker log %s: %s", opt.marker_log, strerror(errno));
    }
    core_reset = avr->reset;
    avr->reset = on_any_reset;
    fix_watchdog();
}


/* How long the next look at the pty may wait, in ms. */
static int wait_budget(void)
{
    if (!cpu_started)
        return -1;
    if (out_len > OUTQ_SIZE - 64)
        return 5;               /* stalled until the host reads: see the main loop */
    if (opt.realtime) {
        double ahead = (double)(avr->cycle - anchor_cycle) / opt.freq - (now() - anchor_wall);
        return ahead > 0.001 ? (ahead > 0.02 ? 20 : (int)(ahead * 1000)) : 0;
    }
    /* Idle (sleeping, or spinning on an empty UART) with nothing to move: wait for the host.
     * Simulated time does not pass while we wait, so cycle counts stay exact. */
    int idle = avr->state == cpu_Sleeping || xon_polls > BATCH / 16;
    return idle && connected && !in_len && !out_len && !rx_busy && !tx_busy ? 1 : 0;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    avr_global_logger_set(logger);

    avr = avr_make_mcu_by_name(opt.mcu);
    if (!avr)
        die("simavr does not know the MCU %s", opt.mcu);
    avr_init(avr);
    avr->sleep = on_sleep;  /* logs sleeps; our loop decides when to wait, simavr's own would usleep() */
    load_code();
    connect_parts();

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("PTY %s\n", open_pty());
    fflush(stdout);
    /* The host reads one line and may stop draining the pipe: anything simavr prints later
     * goes to stderr, so a full pipe can never stall the simulation. */
    dup2(STDERR_FILENO, STDOUT_FILENO);

    while (!stop_requested) {
        int budget = wait_budget();
        if (watch_fd >= 0) {
            service_pty(budget < 0 ? 100 : budget);
        } else {                /* the HUP master polls ready at once: nap instead */
            service_pty(connected ? budget : 0);
            if (!connected && budget != 0)
                usleep(budget > 0 ? budget * 1000 : 2000);
        }
        if (!cpu_started)
            continue;           /* held until the host's first open */
        if (reset_requested) {
            reset_requested = 0;
            external_reset();
        }
        if (out_len > OUTQ_SIZE - 64)
            continue;           /* host not reading: stall the CPU rather than drop bytes */
        if (rx_pin)
            feed_soft_uart();
        else
            feed_uart();

        xon_polls = 0;
        avr_flashaddr_t last_pc = avr->pc;  /* a run off the end of flash leaves pc = 0 */
        for (int i = 0; i < BATCH; i++) {
            last_pc = avr->pc;
            int state = avr_run(avr);
            if (state == cpu_Crashed || state == cpu_Done)
                break;
            note_wake();
            if (in_len && uart_accepts)
                feed_uart();
            else if (in_len && rx_pin)
                feed_soft_uart();
        }
        if (avr->state == cpu_Crashed && opt.bootloader) {
            /* On silicon, erased flash (0xFFFF) executes until it falls into the boot section
             * at the top: an Arduino with no sketch keeps running its bootloader. */
            fprintf(stderr, "CRASHED pc=0x%04x cycle=%llu: restarting the bootloader, as erased "
                    "flash falls through into it on silicon\n", last_pc,
                    (unsigned long long)avr->cycle);
            external_reset();
            avr->state = cpu_Running;
            continue;
        }
        if (avr->state == cpu_Crashed) {
            fprintf(stderr, "CRASHED pc=0x%04x cycle=%llu\n", last_pc,
                    (unsigned long long)avr->cycle);
            return 2;
        }
        if (avr->state == cpu_Done) {   /* sleep with interrupts off: nothing can wake it */
            fprintf(stderr, "HALTED pc=0x%04x cycle=%llu (sleep with interrupts off)\n",
                    avr->pc, (unsigned long long)avr->cycle);
            return 3;
        }
    }
    return 0;
}

/* Native port: the DUT as a host process. Its serial link is a pseudo-terminal whose slave
 * path it prints as "TINYHIL_PTY <path>"; its counter is CLOCK_MONOTONIC in nanoseconds
 * (wall-clock time of the host, not a microcontroller figure). */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tinyhil_port.h"

static int master = -1;
static uint8_t out[8192];
static size_t out_len;

void tinyhil_port_init(void)
{
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) {
        perror("tinyhil native: cannot create a pseudo-terminal");
        exit(1);
    }
    const char *name = ptsname(master);
    /* Hold a slave fd open for the process's life: the pty then survives the host closing
     * and reopening it, and raw mode is set before the host's first byte. */
    int slave = open(name, O_RDWR | O_NOCTTY);
    struct termios tio;
    if (slave < 0 || tcgetattr(slave, &tio)) {
        perror("tinyhil native: cannot open the pseudo-terminal's slave");
        exit(1);
    }
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
    printf("TINYHIL_PTY %s\n", name);
    fflush(stdout);
}

uint8_t tinyhil_port_read(void)
{
    for (;;) {
        uint8_t byte;
        ssize_t got = read(master, &byte, 1);
        if (got == 1)
            return byte;
        if (got < 0 && errno != EINTR && errno != EAGAIN && errno != EIO) {
            perror("tinyhil native: read");
            exit(1);
        }
        if (got <= 0 && errno == EIO)
            usleep(1000);
    }
}

void tinyhil_port_flush(void)
{
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(master, out + done, out_len - done);
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            perror("tinyhil native: write");
            exit(1);
        }
        if (n > 0)
            done += (size_t)n;
    }
    out_len = 0;
}

void tinyhil_port_write(const uint8_t *data, uint16_t len)
{
    for (uint16_t i = 0; i < len; i++) {
        if (out_len == sizeof out)
            tinyhil_port_flush();
        out[out_len++] = data[i];
    }
}

uint32_t tinyhil_port_cycles(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint32_t)((uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec);
}

uint32_t tinyhil_port_timer_hz(void) { return 1000000000UL; }

void tinyhil_port_marker(uint8_t on) { (void)on; }

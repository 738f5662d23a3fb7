/* Native port: the DUT as a host process. Its serial link is a pseudo-terminal whose slave
 * path it prints as "TINYHIL_PTY <path>"; its counter is CLOCK_MONOTONIC in nanoseconds
 * (wall-clock time of the host, not a microcontroller figure). SIGUSR1 resets it as a RESET
 * pin would: the program starts again from scratch (exec), on the same pseudo-terminal. */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tinyhil_port.h"

static int master = -1;
static uint8_t out[8192];
static size_t out_len;
static char self_exe[4096];

#define PTY_FD_ENV "TINYHIL_NATIVE_PTY_FD"
/* Tests emulate a host whose CLOCK_MONOTONIC moves in coarse steps (some VMs: 10 ns or more):
 * the counter is rounded down to a multiple of this many nanoseconds. */
#define CLOCK_STEP_ENV "TINYHIL_NATIVE_CLOCK_STEP_NS"
static uint64_t clock_step_ns = 1;
static char step_env[64] = CLOCK_STEP_ENV "=1";

/* Reset: every static is lost, as on a microcontroller; the pty's master fd is inherited
 * (it is not close-on-exec) and named in the environment. execve is async-signal-safe. */
static void on_reset(int sig)
{
    (void)sig;
    static char fd_env[64];
    char *argv[] = {self_exe, NULL};
    char *envp[] = {fd_env, step_env, NULL};
    int n = master, i = 0;
    char digits[16];
    const char *prefix = PTY_FD_ENV "=";
    while (prefix[i]) { fd_env[i] = prefix[i]; i++; }
    int d = 0;
    do { digits[d++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (d) fd_env[i++] = digits[--d];
    fd_env[i] = 0;
    execve(self_exe, argv, envp);
    _exit(3);                        /* exec failed: die rather than run on in a half state */
}

static void arm_reset(void)
{
    ssize_t len = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (len <= 0)
        return;                      /* no reset without knowing our own program */
    self_exe[len] = 0;
    struct sigaction sa = {0};
    sa.sa_handler = on_reset;
    sa.sa_flags = SA_NODEFER;        /* the signal mask survives exec: keep SIGUSR1 unblocked */
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

void tinyhil_port_init(void)
{
    const char *step = getenv(CLOCK_STEP_ENV);
    if (step && atoll(step) > 0) {
        clock_step_ns = (uint64_t)atoll(step);
        snprintf(step_env, sizeof step_env, "%s=%llu", CLOCK_STEP_ENV,
                 (unsigned long long)clock_step_ns);
    }
    const char *inherited = getenv(PTY_FD_ENV);
    if (inherited) {                 /* started again by a reset: same pty, nothing to announce */
        master = atoi(inherited);
        arm_reset();
        return;
    }
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
    arm_reset();
}

/* Whatever the host has written, in one read: a syscall per byte would cost more than
 * the inference. */
static uint8_t in[4096];
static size_t in_len, in_at;

uint8_t tinyhil_port_read(void)
{
    if (in_at < in_len)
        return in[in_at++];
    for (;;) {
        ssize_t got = read(master, in, sizeof in);
        if (got > 0) {
            in_len = (size_t)got;
            in_at = 1;
            return in[0];
        }
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
    uint64_t ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
    return (uint32_t)(ns - ns % clock_step_ns);
}

uint32_t tinyhil_port_timer_hz(void) { return 1000000000UL; }

void tinyhil_port_marker(uint8_t on) { (void)on; }

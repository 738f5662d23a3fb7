/* Freestanding ESP32 builds: declarations only (nothing here allocates). */
#ifndef TINYHIL_ESP32_STDLIB_H
#define TINYHIL_ESP32_STDLIB_H
#include <stddef.h>
int abs(int x);
char *getenv(const char *name);
void exit(int status) __attribute__((noreturn));
#endif

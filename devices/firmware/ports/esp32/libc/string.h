/* Freestanding ESP32 builds: the few string routines model code uses. They resolve to the
 * ESP32 mask ROM's newlib (esp32.ld), or to the toolchain's libc where one is linked. */
#ifndef TINYHIL_ESP32_STRING_H
#define TINYHIL_ESP32_STRING_H
#include <stddef.h>
void *memcpy(void *dest, const void *src, size_t n);
void *memmove(void *dest, const void *src, size_t n);
void *memset(void *s, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
#endif

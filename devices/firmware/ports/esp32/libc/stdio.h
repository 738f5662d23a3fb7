/* Freestanding ESP32 builds: no stdio. Declared so that headers with optional debug output
 * (emlearn's EML_DEBUG, EML_LOG_ENABLE) compile; using it fails at link time. */
#ifndef TINYHIL_ESP32_STDIO_H
#define TINYHIL_ESP32_STDIO_H
typedef struct tinyhil_no_file FILE;
extern FILE *stderr;
int fprintf(FILE *stream, const char *format, ...);
int printf(const char *format, ...);
#endif

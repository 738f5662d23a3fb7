/* Freestanding ESP32 builds: the float functions model code uses (libm_esp32.c). */
#ifndef TINYHIL_ESP32_MATH_H
#define TINYHIL_ESP32_MATH_H
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define fabsf(x) __builtin_fabsf(x)
#define fabs(x) __builtin_fabs(x)
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
float expf(float x);
float tanhf(float x);
float logf(float x);
float roundf(float x);
#endif

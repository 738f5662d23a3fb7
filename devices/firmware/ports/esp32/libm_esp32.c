/* expf, logf, tanhf and roundf for freestanding ESP32 builds (no libm here: the ROM has none).
 * expf: x = k ln2 + r with |r| <= ln2/2, e^r by a degree-6 Taylor polynomial (error below
 * 2e-7 relative on that interval), scaled by 2^k through the exponent bits. Results may
 * differ from glibc's in the last bit, which is why float variants are not required to
 * agree 100 % with the host reference. */
#include <math.h>
#include <stdint.h>
#include <string.h>

float expf(float x)
{
    if (x != x)
        return x;
    if (x > 88.72283f)
        return INFINITY;
    if (x < -103.97208f)
        return 0.0f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    float t = x * 1.4426950408889634f;
    /* Round to nearest: add 0.5 with the sign of t (bitwise: clang 22's Xtensa backend
     * fails on a select between two float constants). */
    uint32_t tb, hb;
    float half;
    memcpy(&tb, &t, sizeof tb);
    hb = 0x3f000000u | (tb & 0x80000000u);
    memcpy(&half, &hb, sizeof half);
    int32_t k = (int32_t)(t + half);
    float kf = (float)k;
    float r = (x - kf * ln2_hi) - kf * ln2_lo;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
                                                                 r * (1.0f / 720))))));
    /* 2^k in two steps so that k down to -150 (subnormal results) stays representable. */
    int32_t k1 = k / 2, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}

float tanhf(float x)
{
    if (x > 9.0f)
        return 1.0f;
    if (x < -9.0f)
        return -1.0f;
    if (__builtin_fabsf(x) < 0.0004f)
        return x;
    float e = expf(2.0f * x);
    return (e - 1.0f) / (e + 1.0f);
}

/* logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1),
 * |s| <= 0.172, by its odd series to s^11 (relative error below 1e-7). */
float logf(float x)
{
    if (x != x || x < 0.0f)
        return NAN;
    if (x == 0.0f)
        return -INFINITY;
    if (x > 3.4e38f)
        return x;
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = 0;
    if ((bits >> 23) == 0) {                    /* subnormal: scale up by 2^25 first */
        x *= 33554432.0f;
        memcpy(&bits, &x, sizeof bits);
        e = -25;
    }
    e += (int32_t)(bits >> 23) - 127;
    bits = (bits & 0x007fffffu) | 0x3f800000u;  /* m in [1, 2) */
    float m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.41421356f) {
        m *= 0.5f;
        e += 1;
    }
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float series = s * (2.0f + s2 * (2.0f / 3 + s2 * (2.0f / 5 + s2 * (2.0f / 7 + s2 * (2.0f / 9 +
                                                                      s2 * (2.0f / 11))))));
    return series + (float)e * 0.693147180559945f;
}

/* Half away from zero, exactly as C's roundf (int8 QUANTIZE uses it): the fraction of a float
 * below 2^23 is exact, so no +0.5 that could round up 0.49999997. */
float roundf(float x)
{
    if (!(x > -8388608.0f && x < 8388608.0f))   /* NaN, infinities, already integral */
        return x;
    const float a = x < 0 ? -x : x;
    int32_t whole = (int32_t)a;
    if (a - (float)whole >= 0.5f)
        whole++;
    return x < 0 ? -(float)whole : (float)whole;
}

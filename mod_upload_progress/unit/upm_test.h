/* SPDX-License-Identifier: Apache-2.0 */
/* Minimal assertion helpers for the unit tests of the pure parts.
 * Each test program ends with UPM_TEST_DONE(), which prints
 * "N passed, N failed" and returns non-zero on any failure. */
#ifndef UPM_TEST_H
#define UPM_TEST_H

#include <stdio.h>
#include <string.h>

static int upm_t_pass, upm_t_fail;

#define UPM_CHECK(cond) do {                                              \
    if (cond) { upm_t_pass++; }                                           \
    else { upm_t_fail++;                                                  \
        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                #cond); }                                                 \
} while (0)

#define UPM_CHECK_INT(a, b) do {                                          \
    long long upm_a_ = (long long)(a), upm_b_ = (long long)(b);           \
    if (upm_a_ == upm_b_) { upm_t_pass++; }                               \
    else { upm_t_fail++;                                                  \
        fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n",       \
                __FILE__, __LINE__, #a, upm_a_, #b, upm_b_); }            \
} while (0)

#define UPM_CHECK_STR(a, b) do {                                          \
    const char *upm_a_ = (a), *upm_b_ = (b);                              \
    if (upm_a_ && upm_b_ && strcmp(upm_a_, upm_b_) == 0) { upm_t_pass++; }\
    else { upm_t_fail++;                                                  \
        fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n",         \
                __FILE__, __LINE__, #a, upm_a_ ? upm_a_ : "(null)",       \
                upm_b_ ? upm_b_ : "(null)"); }                            \
} while (0)

#define UPM_CHECK_DBL(a, b) do {                                          \
    double upm_a_ = (a), upm_b_ = (b);                                    \
    double upm_d_ = upm_a_ - upm_b_;                                      \
    if (upm_d_ < 1e-9 && upm_d_ > -1e-9) { upm_t_pass++; }                \
    else { upm_t_fail++;                                                  \
        fprintf(stderr, "%s:%d: %s == %.17g, expected %.17g\n",           \
                __FILE__, __LINE__, #a, upm_a_, upm_b_); }                \
} while (0)

#define UPM_TEST_DONE(name) do {                                          \
    printf("%s: %d passed, %d failed\n", name, upm_t_pass, upm_t_fail);   \
    return upm_t_fail ? 1 : 0;                                            \
} while (0)

#endif

// Peak int8 multiply-add rate of one core with AVX-512 VNNI: 12 independent chains of
// `vpdpbusd` on ymm registers (32 u8×s8 multiply-adds each), so neither latency nor memory
// limits the loop. The compute ceiling that batched decode and prefill are measured against
// (docs/benchmarks.md).
//
//   gcc -O2 -mavx512vnni -mavx512vl scripts/bench/vnni-peak.c -o /tmp/vnni-peak && /tmp/vnni-peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

int main(void) {
    __m256i acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_epi32(i);
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(5);
    const long n = 200000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) acc[j] = _mm256_dpbusd_epi32(acc[j], a, b);
        __asm__ volatile("" : "+x"(a));  // keeps the loop from being folded away
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    int sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm256_extract_epi32(acc[i], 0);
    double per_second = n * 12 / seconds;
    printf("%.2f G vpdpbusd (ymm) per second = %.0f G int8 multiply-adds/s on one core (%d)\n",
           per_second / 1e9, per_second * 32 / 1e9, sink & 1);
    return 0;
}

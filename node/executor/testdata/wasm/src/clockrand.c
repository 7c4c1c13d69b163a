// Reads the clocks and random numbers and computes a NaN: on a deterministic
// executor every run prints the same thing.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec rt, mono;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    printf("realtime %lld.%09ld\n", (long long)rt.tv_sec, rt.tv_nsec);
    printf("monotonic %lld.%09ld\n", (long long)mono.tv_sec, mono.tv_nsec);
    printf("time %lld\n", (long long)time(NULL));

    unsigned char buf[32];
    if (getentropy(buf, sizeof buf) != 0) {
        perror("getentropy");
        return 1;
    }
    printf("entropy ");
    for (size_t i = 0; i < sizeof buf; i++) printf("%02x", buf[i]);
    printf("\n");
    printf("arc4random %u %u\n", arc4random(), arc4random());

    srand((unsigned)time(NULL));
    printf("rand %d\n", rand());

    volatile double zero = 0.0;
    double nan = zero / zero;
    volatile float fz = 0.0f;
    float fnan = -(fz / fz);
    uint64_t bits;
    uint32_t fbits;
    memcpy(&bits, &nan, sizeof bits);
    memcpy(&fbits, &fnan, sizeof fbits);
    printf("nan bits %016llx %08x\n", (unsigned long long)bits, fbits);
    return 0;
}

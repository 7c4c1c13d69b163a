// Computes for a while, then prints a checksum: spin <millions of steps>.
// The end-to-end tests use it to catch a node mid-execution; every run of the
// same argument prints the same line.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: spin <millions of steps>\n");
        return 2;
    }
    long millions = strtol(argv[1], NULL, 10);
    if (millions < 0) {
        fprintf(stderr, "spin: steps must not be negative\n");
        return 2;
    }
    uint64_t x = 88172645463325252ull;
    for (long m = 0; m < millions; m++) {
        for (int i = 0; i < 1000000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    printf("spin %ld checksum %016llx\n", millions, (unsigned long long)x);
    return 0;
}
